"""The code version recorded with every run."""

import functools
import subprocess
from pathlib import Path


@functools.cache
def code_version() -> str:
    """The git commit of this checkout (with `-dirty` when it has changes), or `unknown`."""
    root = Path(__file__).resolve().parent.parent
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"
