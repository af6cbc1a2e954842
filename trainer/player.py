"""Plays a checkpoint or a reference controller at human speed: the worker's play task, and
the game that `manage.py play` draws in a terminal.

Imports torch (through `trainer.rl`); web processes never import this module.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import redis

from live import bridge
from live.names import play_group
from live.protocol import Frame, PlayStatus
from trainer import checkpoint_files, plays
from trainer.errors import error_text
from trainer.models import Checkpoint
from trainer.rl import load_policy
from trainer.rl.options import policy_options
from trainer.rl.policies import Policy, one_torch_thread
from trainer.tetris import PIECE_NAMES, TetrisGame

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
# A reload reconnects within this: the game goes on instead of starting again.
NO_VIEWER_GRACE_SECONDS = 5.0
GAME_OVER_PAUSE_SECONDS = 3.0


class GamePlayer:
    """A greedy policy playing games one placement at a time; game n has seed `seed + n - 1`."""

    def __init__(
        self, policy: Policy, *, width: int, height: int, randomizer: str, seed: int
    ) -> None:
        self.policy = policy
        self.board = (width, height, randomizer)
        self.first_seed = seed
        self.episode = 1
        self.game = TetrisGame(width, height, randomizer, seed)

    def choice(self) -> int:
        """The action the policy takes for the current piece."""
        return self.policy.choose([self.game])[0]

    def step(self, action: int | None = None) -> None:
        """Place the current piece where the policy wants it (or at `action`, its choice)."""
        self.game.step(self.choice() if action is None else action)

    def new_game(self) -> None:
        """Start the next game, on the next seed."""
        self.episode += 1
        self.game = TetrisGame(*self.board, self.first_seed + self.episode - 1)

    @property
    def over(self) -> bool:
        """Whether the game is over."""
        return self.game.game_over

    def summary(self) -> str:
        """How the game went, for the status line."""
        return f"{self.game.lines:,} lines in {self.game.pieces:,} pieces"

    def advance(self) -> bool:
        """Place the next piece; True (a single policy never holds one back)."""
        self.step()
        return True

    def frame(self, *, options: bool = False) -> dict:
        """The board and figures, as a frame message's payload; with `options`, what the
        policy weighs for the piece to place now."""
        game = self.game
        extra = {}
        if not game.game_over:
            extra["piece"] = PIECE_NAMES[game.current_piece]
            if options:
                extra["options"] = policy_options(self.policy, game)
        return {
            "episode": self.episode,
            "seed": game.seed,
            "board": game.board_string(),
            "next": PIECE_NAMES[game.next_piece],
            "lines": game.lines,
            "score": game.score,
            "pieces": game.pieces,
            **extra,
        }


class SideBySide:
    """Two policies on the same pieces (the same seeds), placement by placement.

    While they agree their boards are the same; the first piece they would place apart is
    held back once, so that both boards show it with their options, and kept in every
    frame as `disagreement`.
    """

    def __init__(self, first: GamePlayer, second: GamePlayer, second_label: str) -> None:
        self.first, self.second, self.second_label = first, second, second_label
        self.disagreement: dict | None = None

    @property
    def over(self) -> bool:
        """Whether both games are over."""
        return self.first.over and self.second.over

    def summary(self) -> str:
        return f"{self.first.summary()} against {self.second.summary()}"

    def advance(self) -> bool:
        """Place the next piece on each board still playing; False, placing nothing, at
        their first disagreement (the next call places it)."""
        first = None if self.first.over else self.first.choice()
        second = None if self.second.over else self.second.choice()
        if self.disagreement is None and None not in (first, second) and first != second:
            game, width = self.first.game, self.first.game.width
            self.disagreement = {
                "placement": game.pieces + 1,
                "piece": PIECE_NAMES[game.current_piece],
                "choices": [
                    {"rotation": action // width, "column": action % width}
                    for action in (first, second)
                ],
            }
            return False
        for player, action in ((self.first, first), (self.second, second)):
            if action is not None:
                player.step(action)
        return True

    def new_game(self) -> None:
        self.first.new_game()
        self.second.new_game()
        self.disagreement = None

    def frame(self, *, options: bool = False) -> dict:
        """The first board's frame, with the second's as `rival`, and the disagreement."""
        rival = self.second.frame(options=options)
        for key in ("episode", "seed"):
            rival.pop(key)
        return {
            **self.first.frame(options=options),
            "rival": {"label": self.second_label, **rival},
            "disagreement": self.disagreement,
        }


def load_play_policy(spec: plays.PlaySpec | dict) -> Policy:
    """The policy a play plays: its reference controller, or its checkpoint's file (`spec`
    may be a play's `rival` dict)."""
    side = spec if isinstance(spec, dict) else dataclasses.asdict(spec)
    if side["controller"]:
        return load_policy(side["controller"])
    checkpoint = Checkpoint.objects.filter(pk=side["checkpoint_id"], run_id=side["run_id"]).first()
    if checkpoint is None:
        raise FileNotFoundError("the checkpoint was deleted (a run keeps its 10 latest)")
    return load_policy(checkpoint_files.local_path(checkpoint))


@dataclass
class _Pace:
    pps: int
    paused: bool


class PlayLoop:
    """One play in a worker: paced placements, the viewers' commands, frames to the group."""

    def __init__(
        self,
        r: redis.Redis,
        spec: plays.PlaySpec,
        task_id: str,
        player: GamePlayer | SideBySide,
        *,
        max_seconds: float = plays.PLAY_MAX_SECONDS,
    ) -> None:
        self.r, self.spec, self.task_id, self.player = r, spec, task_id, player
        self.group = play_group(spec.token)
        self.max_seconds = max_seconds
        self.seq = 0
        self.pace = _Pace(spec.pps, False)
        self.options_shown = False

    def publish_frame(self) -> None:
        """Send the board to every viewer."""
        self.seq += 1
        self.options_shown = bridge.options_wanted(self.group)
        payload = self.player.frame(options=self.options_shown)
        bridge.publish(self.group, Frame(seq=self.seq, t=time.time(), **payload))

    def publish_status(self, state: str, detail: str = "") -> None:
        """Tell every viewer (and later ones) the play's state, speed and pause."""
        if state in ("playing", "paused") and not detail:
            detail = (
                "a worker plays this game for this page; it stops when you leave, or after "
                f"{self.max_seconds / 60:g} minutes"
            )
        status = PlayStatus(state, detail, self.pace.pps, self.pace.paused, time.time())
        plays.save_status(self.r, self.spec.token, dataclasses.asdict(status))
        bridge.publish(self.group, status)

    def run(self) -> str:
        """Play until nobody watches or the time cap; return why it ended."""
        started = time.monotonic()
        controls = plays.poll(self.r, self.spec.token, self.task_id)
        self.pace = _Pace(controls.pps, controls.paused)
        steps_seen, restarts_seen = controls.steps, controls.restarts
        pending_steps = 0
        self.publish_status(self._state())
        self.publish_frame()
        next_poll = next_piece = time.monotonic()
        unwatched_since: float | None = None
        over_since: float | None = None
        while True:
            now = time.monotonic()
            if now - started >= self.max_seconds:
                return f"a play lasts at most {self.max_seconds / 60:g} minutes"
            if now >= next_poll:
                next_poll = now + POLL_SECONDS
                controls = plays.poll(self.r, self.spec.token, self.task_id)
                if controls.viewers:
                    unwatched_since = None
                elif unwatched_since is None:
                    unwatched_since = now
                elif now - unwatched_since >= NO_VIEWER_GRACE_SECONDS:
                    return "nobody is watching"
                if controls.restarts != restarts_seen:
                    restarts_seen = controls.restarts
                    self._new_game()
                    over_since = None
                if controls.paused:
                    pending_steps += min(plays.MAX_STEPS_AT_ONCE, controls.steps - steps_seen)
                steps_seen = controls.steps
                if not self.options_shown and bridge.options_wanted(self.group):
                    self.publish_frame()  # a paused board shows its options at once
                pace = _Pace(controls.pps, controls.paused)
                if pace != self.pace:
                    self.pace = pace
                    if over_since is None:
                        self.publish_status(self._state())
            if self.player.over:
                if over_since is None:
                    over_since = now
                    self.publish_status(
                        "over",
                        f"game over: {self.player.summary()}; "
                        f"the next game starts in {GAME_OVER_PAUSE_SECONDS:g} s",
                    )
                elif now - over_since >= GAME_OVER_PAUSE_SECONDS:
                    self._new_game()
                    over_since = None
                pending_steps = 0
            elif self.pace.paused:
                next_piece = now + 1.0 / self.pace.pps
                while pending_steps and not self.player.over:
                    pending_steps -= 1
                    self.player.advance()
                    self.publish_frame()
            elif now >= next_piece:
                if not self.player.advance():  # two policies just disagreed: look at it
                    plays.pause(self.r, self.spec.token)
                    self.pace = _Pace(self.pace.pps, True)
                    self.publish_status("paused", "paused where the two first disagree")
                self.publish_frame()
                # Never catch up in a burst after a slow moment: keep the pace from here.
                next_piece = max(next_piece + 1.0 / self.pace.pps, now)
            wake = min(next_poll, next_piece) if not self.pace.paused else next_poll
            time.sleep(min(POLL_SECONDS, max(0.0, wake - time.monotonic())))

    def _state(self) -> str:
        return "paused" if self.pace.paused else "playing"

    def _new_game(self) -> None:
        self.player.new_game()
        self.publish_frame()
        self.publish_status(self._state())


def play_execute(*, token: str, task_id: str) -> str | None:
    """Play a play's game for its viewers; None if it is gone or another task plays it."""
    r = plays.client()
    spec = plays.load_spec(r, token)
    if spec is None or not plays.claim(r, token, task_id):
        return None
    try:
        policy = load_play_policy(spec)
        board = {
            "width": spec.width,
            "height": spec.height,
            "randomizer": spec.randomizer,
            "seed": spec.seed,
        }
        player: GamePlayer | SideBySide = GamePlayer(policy, **board)
        if spec.rival:
            rival = GamePlayer(load_play_policy(spec.rival), **board)
            player = SideBySide(player, rival, spec.rival["label"])
        loop = PlayLoop(r, spec, task_id, player)
        with one_torch_thread():
            reason = loop.run()
        loop.publish_status("ended", reason)
        return reason
    except Exception as error:
        log.exception("play %s failed", token)
        status = PlayStatus("failed", error_text(error), spec.pps, False, time.time())
        plays.save_status(r, token, dataclasses.asdict(status))
        bridge.publish(play_group(token), status)
        return status.detail
    finally:
        plays.release(r, token, task_id)
