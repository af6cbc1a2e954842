"""With the production variables set, Django's deployment checks pass at WARNING level."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

from tetris_site import stack


def test_check_deploy_passes_with_production_settings(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "tetris.example.org",
        "HTTPS": "1",
        "DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=stack.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_web_process_never_imports_torch() -> None:
    code = (
        "import django, sys; django.setup();"
        "import tetris_site.asgi, tetris_site.urls, trainer.admin, trainer.api;"
        "assert 'torch' not in sys.modules, 'torch was imported';"
        "assert 'numba' not in sys.modules, 'numba was imported'"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tetris_site.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=stack.BASE_DIR, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
