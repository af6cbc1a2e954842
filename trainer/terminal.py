"""A board in a terminal: ANSI colours, redrawn in place (`manage.py play`)."""

from __future__ import annotations

from collections.abc import Callable

from trainer.tetris.pieces import PIECE_NAMES, SPAWN_SHAPES

# 256-colour backgrounds in the standard piece colours (static/js/board.js has them in RGB).
PIECE_COLOURS = {"I": 51, "O": 226, "T": 129, "S": 46, "Z": 196, "J": 27, "L": 208}
RESET = "\x1b[0m"
HOME = "\x1b[H"
CLEAR_SCREEN = "\x1b[2J"
CLEAR_LINE_END = "\x1b[K"
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
WALL = "\x1b[38;5;240m"
EMPTY = "\x1b[38;5;236m"


def cell(char: str, colour: bool) -> str:
    """One cell, two characters wide: a coloured block, or its letter without colour."""
    if char not in PIECE_NAMES:
        return f"{EMPTY} .{RESET}" if colour else " ."
    return f"\x1b[48;5;{PIECE_COLOURS[char]}m  {RESET}" if colour else f" {char}"


def board_lines(frame: dict, width: int, colour: bool, side: list[str] | None = None) -> list[str]:
    """The board between walls, with `side` text beside its top rows."""
    board = frame["board"]
    rows = [board[i : i + width] for i in range(0, len(board), width)]
    side = side or []
    left, right, bottom = (f"{WALL}│{RESET}", f"{WALL}│{RESET}", WALL) if colour else ("|", "|", "")
    lines = []
    for index, row in enumerate(rows):
        text = left + "".join(cell(char, colour) for char in row) + right
        lines.append(f"{text}  {side[index]}" if index < len(side) else text)
    lines.append(f"{bottom}└{'──' * width}┘{RESET if colour else ''}")
    return lines


def piece_lines(piece: str, colour: bool) -> list[str]:
    """A piece in its spawn orientation, for the next-piece box."""
    return [
        "".join(cell(piece if c == "#" else ".", colour) for c in row).replace(" .", "  ")
        for row in SPAWN_SHAPES[piece]
    ]


class TerminalScreen:
    """Draws frames over each other at the top of the terminal; close() gives the cursor back."""

    def __init__(
        self, write: Callable[[str], None], *, width: int, colour: bool, title: str
    ) -> None:
        self.write, self.width, self.colour, self.title = write, width, colour, title
        self.started = False

    def draw(self, frame: dict, extra: str = "") -> None:
        """Redraw the board and its figures in place."""
        side = [
            self.title,
            "",
            f"game    {frame['episode']}",
            f"lines   {frame['lines']:,}",
            f"score   {frame['score']:,}",
            f"pieces  {frame['pieces']:,}",
            extra,
            "",
            "next",
            *piece_lines(frame["next"], self.colour),
            "",
            "Ctrl-C stops",
        ]
        lines = board_lines(frame, self.width, self.colour, side)
        prefix = ""
        if not self.started:
            prefix = HIDE_CURSOR + CLEAR_SCREEN
            self.started = True
        self.write(prefix + HOME + "".join(line + CLEAR_LINE_END + "\n" for line in lines))

    def close(self) -> None:
        """Show the cursor again."""
        if self.started:
            self.write(SHOW_CURSOR)
