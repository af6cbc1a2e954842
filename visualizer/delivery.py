"""What one viewer is sent of its group's stream, and when: a plain class, no I/O.

A viewer joins the hub before its snapshot is read, so nothing published meanwhile is
lost: those messages are held and sent right after the snapshot. Boards are latest-only:
a viewer still loading is held only the newest, and gets none that its snapshot's board
supersedes, however late the hub hands it over. Boards are ordered by publish time, not
by `seq`: a run that resumes numbers its boards from 1 again.
"""

from __future__ import annotations

from live.protocol import Envelope

# Messages held for a viewer while its snapshot is read: a minute of metric batches.
MAX_HELD_MESSAGES = 256


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
