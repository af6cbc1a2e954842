"""Errors shown to viewers name no server paths."""

import pytest

from trainer.errors import error_text, without_paths


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "[Errno 2] No such file or directory: '/srv/tetris/data/media/runs/3/latest.pt'",
            "[Errno 2] No such file or directory: '…/latest.pt'",
        ),
        (
            "cannot write /home/ada/data/db.sqlite3 (disk full)",
            "cannot write …/db.sqlite3 (disk full)",
        ),
        (
            "Error 111 connecting to redis://127.0.0.1:6379/0.",
            "Error 111 connecting to redis://127.0.0.1:6379/0.",
        ),
        ("lines 3/4 done, ratio 1/2", "lines 3/4 done, ratio 1/2"),
        ("a/b relative/path.pt", "a/b relative/path.pt"),
        ("the root / and /tmp/", "the root / and …/"),
    ],
)
def test_absolute_paths_are_cut_to_their_last_part(text: str, shown: str) -> None:
    assert without_paths(text) == shown


def test_error_text_names_the_kind() -> None:
    error = FileNotFoundError(2, "No such file or directory")
    error.filename = "/var/lib/tetris/media/runs/9/best.pt"
    assert (
        error_text(error) == "FileNotFoundError: [Errno 2] No such file or directory: '…/best.pt'"
    )
