"""The Gymnasium environment ``tetris_trainer/Tetris-v0``."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trainer.tetris.game import Afterstates, TetrisGame
from trainer.tetris.pieces import NUM_PIECES, PIECE_NAMES

# RGB per cell value: empty, then I O T S Z J L in their usual guideline colours.
PALETTE = np.array(
    [
        (24, 24, 32),
        (0, 240, 240),
        (240, 240, 0),
        (160, 0, 240),
        (0, 240, 0),
        (240, 0, 0),
        (0, 0, 240),
        (240, 160, 0),
    ],
    np.uint8,
)
GRID_COLOUR = (48, 48, 60)
CELL_PIXELS = 16


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
    never legal. `info["action_mask"]` (int8) marks the legal placements: those that end with
    the whole piece inside the board.

    ## Observation Space

    A `Dict`:

    | Key          | Space                               | Meaning                            |
    |--------------|-------------------------------------|------------------------------------|
    | `board`      | `Box(0, 1, (height, width), uint8)` | occupancy, top row first           |
    | `piece`      | `Discrete(7)`                       | current piece, index in "IOTSZJL"  |
    | `next_piece` | `Discrete(7)`                       | the piece after it (a preview)     |

    The research standard (one-piece play) ignores `next_piece`.

    ## Rewards

    The number of lines cleared by the placement (0 to 4).

    ## Starting State

    An empty board; the pieces come from the randomizer seeded by `self.np_random`.

    ## Episode End

    1. Termination: the new current piece has no legal placement (the game is over).
    2. Termination: the action was not legal (as MDPTetris, a placement that does not fit
       ends the game); the board is left as it was and the reward is 0.

    There is no truncation; `gymnasium.make(..., max_episode_steps=N)` adds one.

    ## Info

    `action_mask` (int8, `4 * width`), and the running totals `lines`, `score` (40, 100,
    300, 1200 for 1-4 lines at once) and `pieces`.

    ## Arguments

    | Parameter     | Type  | Default     | Description                                    |
    |---------------|-------|-------------|------------------------------------------------|
    | `width`       | int   | `10`        | board width (4 to 61)                          |
    | `height`      | int   | `20`        | board height (at least 4)                      |
    | `randomizer`  | str   | `"uniform"` | `"uniform"` (each piece independent) or `"bag7"` |
    | `render_mode` | str   | `None`      | `"ansi"` (text frame) or `"rgb_array"`          |

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
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.game = TetrisGame(width, height, randomizer, seed=0)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(self.game.num_actions)
        self.observation_space = spaces.Dict(
            {
                "board": spaces.Box(0, 1, (height, width), np.uint8),
                "piece": spaces.Discrete(NUM_PIECES),
                "next_piece": spaces.Discrete(NUM_PIECES),
            }
        )
        self._mask = np.zeros(self.game.num_actions, np.int8)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a new game; its pieces are drawn from a seed taken from self.np_random."""
        super().reset(seed=seed)
        self.game.reset(int(self.np_random.integers(2**63)))
        self._mask = self.game.action_mask()
        return self._observation(), self._info()

    def step(self, action: int) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Place the current piece by action."""
        game = self.game
        lines = game.step_and_mask(action, self._mask)
        if lines < 0:
            game.top_out()
            self._mask[:] = 0
            lines = 0
        return self._observation(), float(lines), game.game_over, False, self._info()

    def afterstates(self, feature_set: str = "bcts", with_boards: bool = False) -> Afterstates:
        """Every legal placement of the current piece with its afterstate features."""
        return self.game.afterstates(feature_set, with_boards)

    def render(self) -> str | np.ndarray | None:
        """The board as text ("ansi") or as an RGB image ("rgb_array")."""
        if self.render_mode == "ansi":
            g = self.game
            frame = g.board_string()
            rows = [frame[i : i + g.width] for i in range(0, len(frame), g.width)]
            status = (
                f"lines {g.lines}  score {g.score}  pieces {g.pieces}  "
                f"next {PIECE_NAMES[g.next_piece]}"
            )
            return "\n".join([*rows, status]) + "\n"
        if self.render_mode == "rgb_array":
            cells = self.game.colours()
            image = PALETTE[cells].repeat(CELL_PIXELS, axis=0).repeat(CELL_PIXELS, axis=1)
            image[CELL_PIXELS - 1 :: CELL_PIXELS, :] = GRID_COLOUR
            image[:, CELL_PIXELS - 1 :: CELL_PIXELS] = GRID_COLOUR
            return image
        return None

    def _observation(self) -> dict[str, Any]:
        """The observation dict of the current state."""
        game = self.game
        return {"board": game.board(), "piece": game.current_piece, "next_piece": game.next_piece}

    def _info(self) -> dict[str, Any]:
        """The info dict of the current state."""
        game = self.game
        return {
            "action_mask": self._mask.copy(),
            "lines": game.lines,
            "score": game.score,
            "pieces": game.pieces,
        }
