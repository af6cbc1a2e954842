"""TetrisGame: the state and rules of one game, and greedy linear play over many games."""

from dataclasses import dataclass

import numpy as np

from trainer.tetris import kernels
from trainer.tetris.features import FEATURE_SETS, MAX_FEATURES, feature_set_id
from trainer.tetris.pieces import NUM_ROTATIONS, PIECE_NAMES

MIN_SIZE = 4  # the I piece needs four cells in a row
MAX_WIDTH = 61  # two walls and the cells must fit one int64 row

_FRAME_CHARS = np.frombuffer(("." + PIECE_NAMES).encode("ascii"), np.uint8)
_NO_WEIGHTS = np.zeros(MAX_FEATURES)  # afterstates() ranks nothing
_COLOUR_OF_CHAR = np.full(256, -1, np.int8)
_COLOUR_OF_CHAR[_FRAME_CHARS] = np.arange(len(_FRAME_CHARS))


@dataclass
class Afterstates:
    """Every legal placement of the current piece and what it leads to.

    Row i of each array describes placement ``actions[i]``; boards are top row first.
    """

    actions: np.ndarray
    features: np.ndarray
    lines: np.ndarray
    boards: np.ndarray | None = None


def seed_to_u64(seed: int) -> np.uint64:
    """The PRNG state for a seed: any int, taken modulo 2**64."""
    return np.uint64(int(seed) % 2**64)


def _fresh_seed() -> int:
    """A seed from the operating system, for games started without one."""
    return int(np.random.SeedSequence().entropy) % 2**64


def _validate(width: int, height: int, randomizer: str) -> None:
    """Raise ValueError for a board size or randomizer the engine does not support."""
    if not MIN_SIZE <= width <= MAX_WIDTH:
        raise ValueError(f"width must be in [{MIN_SIZE}, {MAX_WIDTH}], got {width}")
    if height < MIN_SIZE:
        raise ValueError(f"height must be at least {MIN_SIZE}, got {height}")
    if randomizer not in kernels.RANDOMIZERS:
        raise ValueError(
            f"unknown randomizer {randomizer!r}; expected one of {list(kernels.RANDOMIZERS)}"
        )


def _weights_for(weights: np.ndarray, feature_set: str) -> np.ndarray:
    """Weights as a contiguous, writable float64 vector: finite, one per feature of the set.

    (A NaN would rank no placement best, and the greedy kernels assume one always is.)
    A read-only array is copied: numba would compile each kernel again for it (the
    published weights are read-only).
    """
    feature_set_id(feature_set)  # ValueError for an unknown set
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if not w.flags.writeable:
        w = w.copy()
    expected = len(FEATURE_SETS[feature_set])
    if w.shape != (expected,):
        raise ValueError(f"{feature_set!r} needs {expected} weights, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"weights must be finite, got {w}")
    return w


class TetrisGame:
    """One game of placement Tetris under MDPTetris rules (docs/RULES.md).

    The current piece is placed by an action ``rotation * width + column`` (column of the
    rotated piece's leftmost cell) and dropped straight down. A placement is legal when the
    piece ends entirely inside the board; the game is over when the current piece has no
    legal placement. Pieces come from a splitmix64 stream seeded by ``seed``, so a game and
    ``play_linear_games`` with the same seed see the same pieces. Pickles as plain numpy.
    """

    def __init__(
        self,
        width: int = 10,
        height: int = 20,
        randomizer: str = "uniform",
        seed: int | None = None,
    ) -> None:
        _validate(width, height, randomizer)
        self.width = width
        self.height = height
        self.randomizer = randomizer
        self.num_actions = NUM_ROTATIONS * width
        self._rows = np.empty(height, np.int64)
        self._heights = np.empty(width, np.int64)
        self._colours = np.empty((height, width), np.int8)
        self._info = np.empty(kernels.INFO_SIZE, np.int64)
        self._rng = np.empty(1, np.uint64)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Start a new game on an empty board; a seed of None draws one from the OS."""
        # Kept so that a game can be replayed from its seed and the actions played.
        self.seed = int(_fresh_seed() if seed is None else seed) % 2**64
        kernels.reset_game(
            self._rows,
            self._heights,
            self._colours,
            self._info,
            self._rng,
            seed_to_u64(self.seed),
            kernels.RANDOMIZERS[self.randomizer],
        )

    @property
    def current_piece(self) -> int:
        """Id of the piece to place now (see PIECE_NAMES)."""
        return int(self._info[kernels.CURRENT])

    @property
    def next_piece(self) -> int:
        """Id of the piece after it."""
        return int(self._info[kernels.NEXT])

    @property
    def lines(self) -> int:
        """Lines cleared so far."""
        return int(self._info[kernels.LINES])

    @property
    def score(self) -> int:
        """Classic score: 40, 100, 300, 1200 for 1, 2, 3, 4 lines at once."""
        return int(self._info[kernels.SCORE])

    @property
    def pieces(self) -> int:
        """Pieces placed so far."""
        return int(self._info[kernels.PIECES])

    @property
    def game_over(self) -> bool:
        """Whether the game has ended: no legal placement for the current piece, or top_out()."""
        return bool(self._info[kernels.GAME_OVER])

    def action_mask(self) -> np.ndarray:
        """int8 mask over all num_actions: 1 where the placement is legal."""
        mask = np.zeros(self.num_actions, np.int8)
        if not self.game_over:
            kernels.fill_action_mask(self._heights, self.current_piece, self.height, mask)
        return mask

    def legal_actions(self) -> np.ndarray:
        """The legal action ids, ascending."""
        return np.flatnonzero(self.action_mask()).astype(np.int64)

    def afterstates(self, feature_set: str = "bcts", with_boards: bool = False) -> Afterstates:
        """Every legal placement of the current piece with its afterstate features."""
        fs = feature_set_id(feature_set)
        wall_height = int(self._info[kernels.WALL_HEIGHT])
        piece = self.current_piece
        actions = np.empty(self.num_actions, np.int64)
        features = np.empty((self.num_actions, len(FEATURE_SETS[feature_set])), np.float32)
        lines = np.empty(self.num_actions, np.int64)
        n, _ = kernels.scan_placements(
            self._rows,
            self._heights,
            wall_height,
            piece,
            fs,
            _NO_WEIGHTS,
            True,
            actions,
            features,
            lines,
        )
        if not with_boards:
            return Afterstates(actions[:n], features[:n], lines[:n])
        boards = np.empty((n, self.height, self.width), np.uint8)
        kernels.fill_afterstate_boards(
            self._rows, self._heights, wall_height, piece, actions[:n], boards
        )
        return Afterstates(actions[:n], features[:n], lines[:n], boards)

    def step(self, action: int) -> int:
        """Place the current piece, draw the next one and return the lines cleared.

        Raises ValueError, leaving the game unchanged, for an illegal action or a finished game.
        """
        lines = kernels.place(
            self._rows, self._heights, self._colours, self._info, self._rng, int(action), True
        )
        if lines < 0:
            state = "the game is over" if self.game_over else "the placement is not legal"
            raise ValueError(f"cannot play action {action}: {state}")
        return lines

    def set_board(self, frame: str, current_piece: int) -> None:
        """Replace the board by a frame (board_string()'s format) and set the current piece.

        For puzzles and tests: lines, score and pieces are kept; the last-move features reset.
        """
        codes = np.frombuffer(frame.encode("ascii", "replace"), np.uint8)
        colours = _COLOUR_OF_CHAR[codes]
        if colours.shape != (self.width * self.height,) or (colours < 0).any():
            raise ValueError(f"a frame is {self.width * self.height} chars of '.{PIECE_NAMES}'")
        if not 0 <= current_piece < len(PIECE_NAMES):
            raise ValueError(f"piece ids are 0 to {len(PIECE_NAMES) - 1}, got {current_piece}")
        colours = colours.reshape(self.height, self.width)[::-1]
        if (colours != 0).all(axis=1).any():
            raise ValueError("a board cannot hold a full row: it would have been cleared")
        self._colours[:] = colours
        kernels.load_board(self._rows, self._heights, self._colours, self._info, current_piece)

    def step_and_mask(self, action: int, mask: np.ndarray) -> int:
        """step() for hot loops: -1 instead of ValueError, and the new piece's mask into mask.

        mask is an int8 array of length num_actions.
        """
        return int(
            kernels.step_with_mask(
                self._rows, self._heights, self._colours, self._info, self._rng, int(action), mask
            )
        )

    def top_out(self) -> None:
        """End the game now, as MDPTetris does when a placement does not fit the board."""
        self._info[kernels.GAME_OVER] = 1

    def play_linear(
        self, weights: np.ndarray, feature_set: str = "bcts", max_pieces: int = 1_000
    ) -> int:
        """Play up to max_pieces greedy placements (argmax of features @ weights); return lines.

        Stops early at game over. Call repeatedly to play a long game in chunks.
        """
        return int(
            kernels.play_linear(
                self._rows,
                self._heights,
                self._colours,
                self._info,
                self._rng,
                _weights_for(weights, feature_set),
                feature_set_id(feature_set),
                int(max_pieces),
                True,
            )
        )

    def play_linear_recorded(
        self, weights: np.ndarray, feature_set: str = "bcts", max_pieces: int = 1_000
    ) -> np.ndarray:
        """play_linear(), returning the actions it played (int64): the same placements."""
        actions = np.empty(max(0, int(max_pieces)), np.int64)
        played = kernels.play_linear_recording(
            self._rows,
            self._heights,
            self._colours,
            self._info,
            self._rng,
            _weights_for(weights, feature_set),
            feature_set_id(feature_set),
            actions,
        )
        return actions[:played]

    def features(self, feature_set: str = "bcts") -> np.ndarray:
        """float32 features of the current board; move features describe the last placement."""
        fs = feature_set_id(feature_set)
        out = np.zeros(len(FEATURE_SETS[feature_set]), np.float32)
        kernels.write_features(
            fs,
            self._rows,
            int(self._info[kernels.WALL_HEIGHT]),
            self.width,
            self.height,
            int(self._info[kernels.LAST_LANDING_X2]),
            int(self._info[kernels.LAST_LINES]),
            int(self._info[kernels.LAST_ERODED]),
            self._heights,
            out,
        )
        return out

    def colours(self) -> np.ndarray:
        """int8 [height, width] view, top row first: 0 empty, else 1 + the cell's piece id."""
        return self._colours[::-1]

    def board(self) -> np.ndarray:
        """uint8 [height, width] occupancy, top row first."""
        return (self.colours() != 0).view(np.uint8)

    def board_string(self) -> str:
        """The frame format: width*height chars from the top row, '.' or the piece's letter."""
        return _FRAME_CHARS[self.colours()].tobytes().decode("ascii")


def play_linear_games(
    weights: np.ndarray,
    seeds: np.ndarray,
    *,
    feature_set: str = "bcts",
    piece_cap: int = 0,
    width: int = 10,
    height: int = 20,
    randomizer: str = "uniform",
) -> tuple[np.ndarray, np.ndarray]:
    """Play one greedy linear game per seed on all cores; return (lines, pieces) per game.

    Each placement maximises features @ weights (first action on ties); piece_cap 0 = no cap.
    Game ``i`` sees the same pieces as ``TetrisGame(seed=seeds[i])``. Runs on numba's
    thread pool: a process that has called it should not fork afterwards (GNU OpenMP, the
    pool numba picks where it can, is not fork-safe).
    """
    _validate(width, height, randomizer)
    seeds_u64 = np.array([seed_to_u64(s) for s in np.asarray(seeds).ravel()], np.uint64)
    return kernels.play_linear_games_kernel(
        _weights_for(weights, feature_set),
        seeds_u64,
        feature_set_id(feature_set),
        int(piece_cap),
        width,
        height,
        kernels.RANDOMIZERS[randomizer],
    )
