"""manage.py play: a checkpoint or a reference controller played in the terminal."""

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.trained_runs import finished_cem_run
from tetris_site import stack
from trainer import selectors
from trainer.terminal import HOME, SHOW_CURSOR
from trainer.tetris import BCTS_WEIGHTS, DELLACHERIE_WEIGHTS, TetrisGame

pytestmark = pytest.mark.django_db


def play(*args: str) -> str:
    """Run `manage.py play` here and return what it printed."""
    out = io.StringIO()
    call_command("play", *args, stdout=out)
    return out.getvalue()


def board_rows(board: str, width: int = 10) -> list[str]:
    """A frame drawn as the command draws it without colour."""
    return [
        "|" + "".join(f" {c}" for c in board[i : i + width]) + "|"
        for i in range(0, len(board), width)
    ]


def test_controller_game_is_redrawn_in_place_in_colour() -> None:
    printed = play("dellacherie", "--pps", "60", "--pieces", "20", "--seed", "3", "--force-color")
    assert printed.count(HOME) == 21  # the empty board, then once a piece
    assert "\x1b[48;5;" in printed and printed.rstrip().endswith("(seed 3)")
    assert SHOW_CURSOR in printed
    game = TetrisGame(seed=3)
    game.play_linear(DELLACHERIE_WEIGHTS, "dellacherie", 20)
    assert f"played 20 pieces: {game.lines} lines, score {game.score}" in printed


def test_without_a_terminal_only_the_last_board_is_printed() -> None:
    printed = play("bcts", "--pps", "60", "--pieces", "15", "--seed", "4")
    assert HOME not in printed and "\x1b[" not in printed
    game = TetrisGame(seed=4)
    game.play_linear(BCTS_WEIGHTS, "bcts", 15)
    assert "\n".join(board_rows(game.board_string())) in printed


def test_checkpoint_is_chosen_by_episode_and_defaults_to_the_latest(user: object) -> None:
    run = finished_cem_run(user)
    latest = selectors.latest_checkpoint(run)
    printed = play(str(run.pk), "--pps", "60", "--pieces", "10", "--seed", "1")
    assert printed.rstrip().endswith("(seed 1)") and "10 pieces" in printed
    episodes = [c.episode for c in selectors.run_checkpoints(run)]
    printed = play(str(run.pk), "--checkpoint", str(episodes[-1]), "--pps", "60", "--pieces", "5")
    assert "5 pieces" in printed
    with pytest.raises(
        CommandError, match=f"no checkpoint at episode 7; it has episodes {latest.episode}"
    ):
        play(str(run.pk), "--checkpoint", "7")


def test_bad_input_is_a_one_line_error(user: object, other_user: object) -> None:
    run = finished_cem_run(user)
    for args, message in [
        (("dellacherie", "--pps", "0"), "--pps must be from 1 to 60"),
        (("dellacherie", "--pieces", "-1"), "--pieces"),
        (("dellacherie", "--checkpoint", "3"), "reference controllers"),
        (("123456",), "run 123456 not found"),
        (("tetris",), "RUN must be a run id"),
        ((str(run.pk), "--user", "bob"), f"run {run.pk} not found"),
    ]:
        with pytest.raises(CommandError, match=message):
            play(*args)


def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    command = [sys.executable, "manage.py", "play", "dellacherie", "--pps", "5", "--force-color"]
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        command,
        cwd=stack.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # As at a terminal: a shell's background job (`make test &`) ignores SIGINT, and
        # its children would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output = bytearray()

    def read() -> None:
        while chunk := process.stdout.read1():
            output.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        # The second board drawn means a piece was placed: the engine is compiled (on a
        # fresh clone numba compiles it here first, which a signal would only wait for).
        deadline = time.monotonic() + 120
        while output.count(HOME.encode()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        reader.join(timeout=10)
        err = process.stderr.read()
    finally:
        process.kill()
    assert process.returncode == 0, err.decode()
    out = bytes(output).decode()
    assert out.rstrip().endswith(")") and "stopped by Ctrl-C" in out
