"""What one viewer is sent of its group's stream, and when: plain classes, no I/O.

A viewer joins the hub before its snapshot is read, so nothing published meanwhile is
lost: those messages are held and sent right after the snapshot. Boards are latest-only:
a viewer still loading is held only the newest, and gets none that its snapshot's board
supersedes, however late the hub hands it over. Boards are ordered by publish time, not
by `seq`: a run that resumes numbers its boards from 1 again.

Once streaming, a reader that does not keep up is paced (`ReaderPace`): while anything
already sent waits in daphne's buffer for it, it is skipped boards (the next one
supersedes them anyway); every other message still goes, in order. One that stays more
than MAX_BACKLOG_BYTES behind for MAX_BACKLOG_SECONDS is closed: its page reconnects and
starts again from a snapshot, and daphne's memory never grows without bound.
"""

from __future__ import annotations

import enum

from live.protocol import Envelope

# Messages held for a viewer while its snapshot is read: a minute of metric batches.
MAX_HELD_MESSAGES = 256
# A reader this far behind for this long is closed (a board is a few hundred bytes; a
# snapshot of a long run a few hundred kilobytes).
MAX_BACKLOG_BYTES = 4 * 1024 * 1024
MAX_BACKLOG_SECONDS = 3.0


class ViewerStream:
    """Holds a viewer's messages until its snapshot is sent, then passes them on."""

    def __init__(self, *, max_held: int = MAX_HELD_MESSAGES) -> None:
        self.max_held = max_held
        self.held: list[Envelope] | None = []  # None once released
        # When the snapshot's board was published, until a later board arrives.
        self.shown_at: float | None = None

    def offer(self, message: Envelope) -> bool:
        """Take a message from the hub: True if it is to be sent now (else held or dropped)."""
        if message.is_board_frame and self.shown_at is not None:
            if message.published <= self.shown_at:
                return False
            self.shown_at = None
        if self.held is None:
            return True
        if message.is_board_frame:
            self.held = [held for held in self.held if not held.is_board_frame]
        if len(self.held) < self.max_held:
            self.held.append(message)
        return False

    def snapshot_shows(self, board: Envelope | None) -> None:
        """The snapshot carries `board`: no board published until then is sent after it."""
        if board is None:
            return
        self.shown_at = board.published
        if self.held:
            self.held = [m for m in self.held if not self._superseded(m)]

    def _superseded(self, message: Envelope) -> bool:
        return (
            message.is_board_frame
            and self.shown_at is not None
            and message.published <= self.shown_at
        )

    def next_held(self) -> Envelope | None:
        """The oldest held message; None once all are out, after which `offer` passes
        messages straight on. (Messages that arrive while the held ones are being sent
        queue behind them.)"""
        if self.held:
            return self.held.pop(0)
        self.held = None
        return None


class Pace(enum.Enum):
    """What to do with one message for one socket."""

    SEND = "send"
    SKIP = "skip"
    CLOSE = "close"


class ReaderPace:
    """Skips boards for a reader that has not taken what it was sent; closes one that
    stays too far behind."""

    def __init__(
        self,
        *,
        max_backlog: int = MAX_BACKLOG_BYTES,
        max_seconds: float = MAX_BACKLOG_SECONDS,
    ) -> None:
        self.max_backlog = max_backlog
        self.max_seconds = max_seconds
        self.behind_since: float | None = None  # when it went past max_backlog

    def pace(self, message: Envelope, backlog: int | None, now: float) -> Pace:
        """Whether `message` goes to a socket holding `backlog` unsent bytes (None: not
        known, so everything goes) at monotonic time `now`."""
        if backlog is None:
            return Pace.SEND
        if backlog <= self.max_backlog:
            self.behind_since = None
        elif self.behind_since is None:
            self.behind_since = now
        elif now - self.behind_since >= self.max_seconds:
            return Pace.CLOSE
        if backlog and message.is_board_frame:
            return Pace.SKIP
        return Pace.SEND
