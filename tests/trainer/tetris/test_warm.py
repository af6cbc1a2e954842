"""`python -m trainer.tetris.warm` compiles every kernel the engine calls."""

import re
import subprocess
import sys
from pathlib import Path

import trainer.tetris.game

REPORT = """
from trainer.tetris import kernels
from trainer.tetris.warm import compile_kernels
compile_kernels()
for name in sys.argv[1:]:
    print(name, len(getattr(kernels, name).signatures))
"""


def test_the_warm_up_compiles_every_kernel_the_engine_calls() -> None:
    source = Path(trainer.tetris.game.__file__).read_text()
    called = sorted(set(re.findall(r"kernels\.([a-z_]+)\(", source)))
    assert len(called) >= 10, called
    # A process of its own: the warm-up runs numba's OpenMP pool, which must not fork.
    result = subprocess.run(
        [sys.executable, "-c", "import sys" + REPORT, *called],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    compiled = dict(line.split() for line in result.stdout.splitlines())
    assert {name for name, count in compiled.items() if int(count) == 0} == set()
    assert sorted(compiled) == called
