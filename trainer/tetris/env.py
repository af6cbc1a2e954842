"""The Gymnasium environment ``tetris_trainer/Tetris-v0``."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trainer.tetris.features import FEATURE_SETS
from trainer.tetris.game import Afterstates, TetrisGame
from trainer.tetris.pieces import NUM_PIECES
from trainer.tetris.render import ansi_frame, rgb_frame

ILLEGAL_ACTIONS = ("end", "noop", "penalty")
FEATURE_OBSERVATIONS = ("afterstates", "board")


class TetrisEnv(gym.Env[dict[str, Any], int]):
    """
    ## Description

    Placement Tetris under the rules of MDPTetris, the simulator behind the published
    records of linear controllers (docs/RULES.md): a 10x20 board by default and the seven
    tetrominoes. Each step places the current piece, which is dropped straight down from
    above the stack; full lines are cleared; the next piece is drawn.

    ## Action Space

    `Discrete(4 * width)`: action `rotation * width + column`, where `column` is the board
    column of the rotated piece's leftmost cell. Rotations are clockwise quarter turns from
    the spawn orientation; a rotation that repeats an earlier one (O: 1-3, I/S/Z: 2-3) is
    never legal. A placement is legal when it ends with the whole piece inside the board.
    `env.action_masks()` (bool, the convention of sb3-contrib's MaskablePPO) and
    `info["action_mask"]` (int8) mark the legal ones.

    ## Observation Space

    A `Dict`:

    | Key          | Space                               | Meaning                            |
    |--------------|-------------------------------------|------------------------------------|
    | `board`      | `Box(0, 1, (height, width), uint8)` | occupancy, top row first           |
    | `piece`      | `Discrete(7)`                       | current piece, index in "IOTSZJL"  |
    | `next_piece` | `Discrete(7)`                       | the piece after it (a preview)     |

    With `features="afterstates"` it adds `afterstate_features`, float32
    `(4 * width, n)`: row `a` holds the features of the board that action `a` leads to
    (zeros where `a` is illegal). With `features="board"` it adds `board_features`, float32
    `(n,)`: the current board's own features. `n` is the size of `feature_set`.

    The research standard (one-piece play) ignores `next_piece`.

    ## Rewards

    The number of lines cleared by the placement (0 to 4); `-illegal_penalty` for an
    illegal action under `illegal_action="penalty"`.

    ## Starting State

    An empty board; the pieces come from the randomizer seeded by `self.np_random`.

    ## Episode End

    1. Termination: the new current piece has no legal placement (the game is over).
    2. An illegal action, as `illegal_action` says:
       - `"end"` (the default, as MDPTetris: a placement that does not fit ends the game):
         terminates; the board is left as it was and the reward is 0.
       - `"noop"`: nothing happens; the same piece waits, and the reward is 0.
       - `"penalty"`: nothing happens, and the reward is `-illegal_penalty`.

       Either way `info["illegal_action"]` is True for that step.

    There is no truncation; `gymnasium.make(..., max_episode_steps=N)` adds one (advised
    with `"noop"` or `"penalty"`, where an agent can repeat an illegal action for ever).

    ## Info

    `action_mask` (int8, `4 * width`), `illegal_action` (bool), and the running totals
    `lines`, `score` (40, 100, 300, 1200 for 1-4 lines at once) and `pieces`.

    ## Arguments

    | Parameter         | Type  | Default     | Description                                  |
    |-------------------|-------|-------------|----------------------------------------------|
    | `width`           | int   | `10`        | board width (4 to 61)                        |
    | `height`          | int   | `20`        | board height (at least 4)                    |
    | `randomizer`      | str   | `"uniform"` | `"uniform"` (each piece independent) or `"bag7"` |
    | `render_mode`     | str   | `None`      | `"ansi"` (text frame) or `"rgb_array"`        |
    | `illegal_action`  | str   | `"end"`     | `"end"`, `"noop"` or `"penalty"` (above)       |
    | `illegal_penalty` | float | `1.0`       | the penalty's size                           |
    | `features`        | str   | `None`      | `"afterstates"` or `"board"` (above)           |
    | `feature_set`     | str   | `"bcts"`    | `"classic"`, `"dellacherie"`, `"bcts"` or `"dt"` |

    Both render modes show the piece to place, the next piece, the lines and the score
    beside the board.

    `env.unwrapped.afterstates(feature_set, with_boards)` returns every legal placement with
    its afterstate features in one call; `env.unwrapped.game` is the underlying TetrisGame.

    ## Version History

    * v0: Initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 15}

    def __init__(
        self,
        width: int = 10,
        height: int = 20,
        randomizer: str = "uniform",
        render_mode: str | None = None,
        illegal_action: str = "end",
        illegal_penalty: float = 1.0,
        features: str | None = None,
        feature_set: str = "bcts",
    ) -> None:
        _choose("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        _choose("illegal_action", illegal_action, ILLEGAL_ACTIONS)
        _choose("features", features, (None, *FEATURE_OBSERVATIONS))
        _choose("feature_set", feature_set, tuple(FEATURE_SETS))
        if not np.isfinite(illegal_penalty):
            raise ValueError(f"illegal_penalty must be finite, got {illegal_penalty!r}")
        self.game = TetrisGame(width, height, randomizer, seed=0)
        self.render_mode = render_mode
        self.illegal_action = illegal_action
        self.illegal_penalty = float(illegal_penalty)
        self.features = features
        self.feature_set = feature_set
        self.action_space = spaces.Discrete(self.game.num_actions)
        observations: dict[str, spaces.Space] = {
            "board": spaces.Box(0, 1, (height, width), np.uint8),
            "piece": spaces.Discrete(NUM_PIECES),
            "next_piece": spaces.Discrete(NUM_PIECES),
        }
        count = len(FEATURE_SETS[feature_set])
        # Every feature counts cells, rows, depths or patterns: none is negative or above this.
        most = float(width * height * height)
        if features == "afterstates":
            shape = (self.game.num_actions, count)
            observations["afterstate_features"] = spaces.Box(0, most, shape, np.float32)
        elif features == "board":
            observations["board_features"] = spaces.Box(0, most, (count,), np.float32)
        self.observation_space = spaces.Dict(observations)
        self._mask = np.zeros(self.game.num_actions, np.int8)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a new game; its pieces are drawn from a seed taken from self.np_random."""
        super().reset(seed=seed)
        self.game.reset(int(self.np_random.integers(2**63)))
        self._mask = self.game.action_mask()
        return self._observation(), self._info(illegal=False)

    def step(self, action: int) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Place the current piece by action; an illegal one is handled as `illegal_action` says."""
        game = self.game
        lines = game.step_and_mask(action, self._mask)  # -1, and nothing changed, if illegal
        legal = lines >= 0
        if legal:
            reward = float(lines)
        elif self.illegal_action == "end":
            game.top_out()
            self._mask[:] = 0
            reward = 0.0
        else:
            reward = -self.illegal_penalty if self.illegal_action == "penalty" else 0.0
        return self._observation(), reward, game.game_over, False, self._info(illegal=not legal)

    def action_masks(self) -> np.ndarray:
        """bool over all actions: True where the placement is legal (sb3-contrib's convention)."""
        return self._mask.astype(bool)

    def afterstates(self, feature_set: str = "bcts", with_boards: bool = False) -> Afterstates:
        """Every legal placement of the current piece with its afterstate features."""
        return self.game.afterstates(feature_set, with_boards)

    def render(self) -> str | np.ndarray | None:
        """The frame as text ("ansi") or as an RGB image ("rgb_array"), with the totals."""
        if self.render_mode == "ansi":
            return ansi_frame(self.game)
        if self.render_mode == "rgb_array":
            return rgb_frame(self.game)
        return None

    def _observation(self) -> dict[str, Any]:
        """The observation dict of the current state."""
        game = self.game
        observation = {
            "board": game.board(),
            "piece": game.current_piece,
            "next_piece": game.next_piece,
        }
        if self.features == "afterstates":
            table = np.zeros(self.observation_space["afterstate_features"].shape, np.float32)
            if not game.game_over:
                after = game.afterstates(self.feature_set)
                table[after.actions] = after.features
            observation["afterstate_features"] = table
        elif self.features == "board":
            observation["board_features"] = game.features(self.feature_set)
        return observation

    def _info(self, illegal: bool) -> dict[str, Any]:
        """The info dict of the current state."""
        game = self.game
        return {
            "action_mask": self._mask.copy(),
            "illegal_action": illegal,
            "lines": game.lines,
            "score": game.score,
            "pieces": game.pieces,
        }


def _choose(name: str, value: Any, allowed: tuple) -> None:
    """ValueError naming the allowed values unless `value` is one of them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
