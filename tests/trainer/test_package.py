"""`pip install .` gives the learning core with its own small set of dependencies."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[2]
CORE_DEPENDENCIES = {"numpy", "numba", "gymnasium", "torch", "tqdm"}
WEB_MODULES = ("django", "celery", "channels", "daphne", "ninja", "redis", "twisted", "kombu")

# Run in a fresh interpreter from the unpacked wheel, with the web stack's modules made
# unimportable, as in a venv that installed the wheel alone.
BLOCKED_IMPORTS = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not installed with the learning core")
sys.meta_path.insert(0, Blocked())
sys.path.insert(0, {wheel!r})
import gymnasium, trainer.tetris, trainer.rl
from trainer.rl import TrainConfig, evaluate, train
assert trainer.tetris.__file__.startswith({wheel!r}), trainer.tetris.__file__
env = gymnasium.make("tetris_trainer/Tetris-v0")
env.reset(seed=0)
masks = env.unwrapped.action_masks()
assert masks.any() and masks.tolist() == env.unwrapped.game.action_mask().astype(bool).tolist()
result = train(TrainConfig.from_preset("quick", {{"max_pieces": 300, "eval_every_pieces": 0}}))
assert result.total_pieces >= 300, result.total_pieces
print("ok")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel that `pip install .` builds from this checkout."""
    folder = tmp_path_factory.mktemp("wheel")
    # Built from a copy: an in-tree build would leave build/ and egg-info in the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "trainer", source / "trainer", ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--wheel-dir", str(folder), str(source)),
        ],
        check=True,
        timeout=300,
    )
    (found,) = folder.glob("tetris_trainer-*.whl")
    return found


def requirements(wheel: Path) -> list[Requirement]:
    """The Requires-Dist entries of the wheel's metadata."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    lines = (line for line in metadata.splitlines() if line.startswith("Requires-Dist:"))
    return [Requirement(line.split(":", 1)[1]) for line in lines]


def test_the_wheel_requires_only_the_learning_cores_dependencies(wheel: Path) -> None:
    core = {r.name.lower() for r in requirements(wheel) if r.marker is None}
    web = {r.name.lower() for r in requirements(wheel) if r.marker is not None}
    assert core == CORE_DEPENDENCIES
    assert {"django", "channels", "celery", "daphne"} <= web
    assert all(r.marker.evaluate({"extra": "web"}) for r in requirements(wheel) if r.marker)


def test_the_wheel_holds_the_engine_and_the_learners(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
    assert "trainer/tetris/env.py" in files and "trainer/rl/dqn.py" in files
    assert not any(f.startswith(("visualizer/", "tetris_site/", "tests/")) for f in files)


def test_the_installed_core_imports_and_trains_without_the_web_stack(
    wheel: Path, tmp_path: Path
) -> None:
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    code = BLOCKED_IMPORTS.format(blocked=WEB_MODULES, wheel=str(unpacked))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
