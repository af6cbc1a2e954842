"""A worker process loads the learning core and Django, never the web server's stack."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB_ONLY = ("twisted", "autobahn", "daphne", "visualizer")
SERVER = ("twisted", "autobahn", "daphne")


def test_a_worker_importing_what_its_tasks_run_loads_no_web_server_module() -> None:
    code = f"""
import json, sys
import django
django.setup()
before = set(sys.modules)
import trainer.tasks, trainer.runner, trainer.player, trainer.evaluator
new = set(sys.modules) - before
loaded = sorted(m for m in new if m.split(".")[0] in {WEB_ONLY!r})
server = sorted(m for m in sys.modules if m.split(".")[0] in {SERVER!r})
print(json.dumps({{"loaded": loaded, "server": server, "new": len(new)}}))
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tetris_site.settings", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["new"] > 100, "the runner's own imports (torch) were loaded"
    assert result["loaded"] == [], "imported by the code the tasks run"
    assert result["server"] == [], "daphne's stack, loaded by django.setup() itself"
