"""An error as the people watching a run read it: its kind and message, no server paths.

A run's error and a play's failure are shown to every viewer, public runs' included; the
server's folders (where the data lives, who runs it) are not theirs to read. The whole
text, paths and traceback, goes to the worker's log.
"""

from __future__ import annotations

import re

# An absolute path: a slash not after a word, a dot, a colon or a slash (so not the
# "//host/0" of a URL, nor "6379/0"), then folders; the last part is kept.
_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s'\":,;()\[\]{}/]+/)+([^\s'\":,;()\[\]{}/]*)")


def without_paths(text: str) -> str:
    """`text` with each absolute path cut to its last part: /srv/data/runs/3/x.pt -> …/x.pt."""
    return _PATH.sub(lambda match: f"\N{HORIZONTAL ELLIPSIS}/{match.group(1)}", text)


def error_text(error: BaseException) -> str:
    """`Kind: message`, without server paths."""
    return without_paths(f"{type(error).__name__}: {error}")
