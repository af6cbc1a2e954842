"""The live stream's messages, defined once: what a worker publishes and a browser reads.

Every message a server sends on `/ws/runs/<id>/` or `/ws/play/<token>/` is a JSON object
whose `type` names its kind; each kind is a dataclass below. Between the worker and the
web processes a message travels in an `Envelope`, which carries its kind and publish time
outside the JSON: the hub and the consumers route and order messages without decoding
them. The close codes are the ones the pages act on. docs/ARCHITECTURE.md has the table.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, ClassVar

# A socket closed with these tells the page why: sign in again (no longer signed in: signed
# out, password changed, account deactivated), no access (to this run or play, or no
# longer), too slow (its reader fell too far behind the stream; a new socket starts from a
# fresh snapshot), or too many (the user has MAX_SOCKETS_PER_USER sockets open already).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408
CLOSE_TOO_MANY = 4429


class Message:
    """A server-to-client message: a dataclass whose `kind` is its JSON `type`."""

    kind: ClassVar[str]

    def to_json(self) -> str:
        """The message as the browser receives it (a field set to None is left out)."""
        fields = {"type": self.kind}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return json.dumps(fields, separators=(",", ":"))


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


@dataclass(frozen=True)
class Frame(Message):
    """A board as it is now: latest-only, so a newer frame supersedes it."""

    kind: ClassVar[str] = "frame"
    seq: int  # numbered from 1 by its publisher (again from 1 after a resume)
    t: float  # when it was published (Unix time)
    episode: int
    board: str  # rows top to bottom, one character per cell ("." empty)
    next: str  # the next piece's name
    lines: int
    score: int
    pieces: int
    seed: int | None = None  # plays: the game's seed, for a replay
    piece: str | None = None  # the piece to place now (absent once the game is over)
    # What the policy weighed for `piece`, best first: {rotation, column, value, chosen},
    # and `terms` for a linear policy. Present only while someone has the overlay on, and
    # sent only to the sockets that turned it on (`without_options`).
    options: list[dict[str, Any]] | None = None
    # Side by side: the second policy's board on the same pieces ({label, board, next,
    # lines, score, pieces, piece, options}), and where the two first disagreed
    # ({placement, piece, choices: [{rotation, column}, {rotation, column}]}), once they did.
    rival: dict[str, Any] | None = None
    disagreement: dict[str, Any] | None = None


@dataclass(frozen=True)
class Metrics(Message):
    """Episode metric points since the last batch (a few batches a second)."""

    kind: ClassVar[str] = "metrics"
    points: list[dict[str, Any]]


@dataclass(frozen=True)
class RunStatus(Message):
    """A run's status changed (`detail` says why); `t` orders messages from several processes."""

    kind: ClassVar[str] = "status"
    status: str
    detail: str
    t: float


@dataclass(frozen=True)
class PlayStatus(Message):
    """A play's state, speed and pause changed."""

    kind: ClassVar[str] = "status"
    state: str  # queued, playing, paused, ended or failed
    detail: str
    pps: int  # placements per second
    paused: bool
    t: float


@dataclass(frozen=True)
class BestGames(Message):
    """A run's best recorded games, after a new best."""

    kind: ClassVar[str] = "best_games"
    best_games: list[dict[str, Any]]


@dataclass(frozen=True)
class Checkpoints(Message):
    """A run's checkpoints, newest first, after one was written or pruned."""

    kind: ClassVar[str] = "checkpoints"
    checkpoints: list[dict[str, Any]]


@dataclass(frozen=True)
class EvaluationUpdate(Message):
    """An evaluation of a run, new or with more games played."""

    kind: ClassVar[str] = "evaluation"
    evaluation: dict[str, Any]


@dataclass(frozen=True)
class ExperimentUpdate(Message):
    """An experiment's statistics, recomputed (`trainer.experiments.experiment_summary`)."""

    kind: ClassVar[str] = "experiment"
    experiment: dict[str, Any]


@dataclass(frozen=True)
class Error(Message):
    """The answer to a client message that could not be done; the socket stays open."""

    kind: ClassVar[str] = "error"
    error: str


@dataclass(frozen=True)
class AccessChanged(Message):
    """A control event for the consumers, never sent to a browser: re-check access."""

    kind: ClassVar[str] = "access_changed"


# Kinds that the consumers act on themselves instead of forwarding.
CONTROL_KINDS = frozenset({AccessChanged.kind})


def snapshot_json(fields: dict[str, Any], **encoded: str | None) -> str:
    """The `snapshot` message a viewer gets first: `fields`, plus parts already JSON-encoded
    (the metric history, the last frame; None is `null`)."""
    head = json.dumps({"type": "snapshot", **fields}, separators=(",", ":"))
    parts = "".join(f',"{name}":{text or "null"}' for name, text in encoded.items())
    return f"{head[:-1]}{parts}}}"


@dataclass(frozen=True, eq=False)
class Envelope:
    """One message on its way: its kind and publish time, and the JSON the browser gets."""

    kind: str
    published: float
    text: str

    @classmethod
    def of(cls, message: Message, published: float | None = None) -> Envelope:
        """Wrap a message, stamped now unless `published` is given."""
        return cls(message.kind, time.time() if published is None else published, message.to_json())

    @property
    def is_board_frame(self) -> bool:
        """Whether this is a board, which the next one supersedes."""
        return self.kind == Frame.kind

    @property
    def is_control(self) -> bool:
        """Whether this is for the consumers, not the browser."""
        return self.kind in CONTROL_KINDS

    @property
    def without_options(self) -> Envelope:
        """This message as a socket without the overlay gets it: a frame's `options` left
        out. Worked out once per message, however many sockets take it."""
        if not self.is_board_frame or '"options":' not in self.text:
            return self
        return self._without_options

    @cached_property
    def _without_options(self) -> Envelope:
        fields = json.loads(self.text)
        fields.pop("options", None)
        if fields.get("rival"):
            fields["rival"].pop("options", None)
        return Envelope(self.kind, self.published, json.dumps(fields, separators=(",", ":")))

    def to_bytes(self) -> bytes:
        """The envelope as published: `<kind> <published>\\n<json>`."""
        return f"{self.kind} {self.published!r}\n{self.text}".encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """An envelope as published; ValueError if it is not one."""
        head, newline, body = data.partition(b"\n")
        kind, _, published = head.decode("ascii").partition(" ")
        if not newline or not kind:
            raise ValueError("not a live stream envelope")
        return cls(kind, float(published), body.decode())
