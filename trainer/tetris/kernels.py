"""Compiled Tetris kernels: bitboard rules, MDPTetris features, afterstates, greedy play.

A board is an int64 array of rows, row 0 at the bottom. Column ``c`` is bit ``c + 1``; bit 0
and bit ``width + 1`` are the side walls, always set, as in MDPTetris, so that row
transitions and wells see the walls as full cells without special cases. A game's state
is five arrays (rows, column heights, colours, an int64 info vector and the PRNG state) so
that Python and the kernels share it without copies, and it pickles as plain numpy.

Everything is compiled lazily on first call and cached on disk (``cache=True``); ``nogil``
lets Python threads run kernels on several cores. The piece tables from ``pieces.py`` and
the feature sets' ids and sizes from ``features.py`` are baked in at compile time: numba's
cache keys on this file only, so touch it after changing those.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from trainer.tetris.features import BCTS, CLASSIC, DT, FEATURE_SETS, MAX_FEATURES
from trainer.tetris.pieces import (
    NUM_PIECES,
    NUM_ROTATIONS,
    PIECE_BOTTOMS,
    PIECE_HEIGHT,
    PIECE_ROW_MASKS,
    PIECE_TOPS,
    PIECE_WIDTH,
    ROTATION_VALID,
)

# Layout of a game's int64 info vector.
CURRENT, NEXT, LINES, SCORE, PIECES, GAME_OVER, WALL_HEIGHT = range(7)
RANDOMIZER, BAG_POS = 7, 8
BAG = 9  # 7 slots: the current bag of the bag7 randomizer
LAST_LANDING_X2, LAST_ERODED, LAST_LINES = 16, 17, 18  # the last placement, for features()
INFO_SIZE = 19

UNIFORM, BAG7 = 0, 1
RANDOMIZERS = {"uniform": UNIFORM, "bag7": BAG7}

SCORE_TABLE = np.array([0, 40, 100, 300, 1200], np.int64)
SCORE_TABLE.flags.writeable = False

ROW_MASKS = PIECE_ROW_MASKS.astype(np.int64)
ROW_MASKS.flags.writeable = False

# Features in each set, by kernel id.
FEATURE_COUNTS = np.array([len(names) for names in FEATURE_SETS.values()], np.int64)
FEATURE_COUNTS.flags.writeable = False

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_NUM_PIECES_U64 = np.uint64(NUM_PIECES)


@intrinsic
def popcount(typingctx: object, x: types.Integer) -> tuple:
    """Number of set bits, as LLVM's ctpop (one instruction where the CPU has it)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context: object, builder: ir.IRBuilder, signature: object, args: list) -> ir.Value:
        count = builder.ctpop(args[0])
        if x.bitwidth < 64:
            count = builder.zext(count, ir.IntType(64))
        return count

    return types.int64(x), codegen


@njit(cache=True, nogil=True)
def next_random(rng: np.ndarray) -> np.uint64:
    """Next output of splitmix64 whose state is rng[0]."""
    z = rng[0] + _GOLDEN
    rng[0] = z
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def draw_piece(info: np.ndarray, rng: np.ndarray) -> int:
    """Next piece from the game's randomizer."""
    if info[RANDOMIZER] == UNIFORM:
        return int(next_random(rng) % _NUM_PIECES_U64)
    if info[BAG_POS] >= NUM_PIECES:
        for i in range(NUM_PIECES):
            info[BAG + i] = i
        for i in range(NUM_PIECES - 1, 0, -1):  # Fisher-Yates
            j = int(next_random(rng) % np.uint64(i + 1))
            info[BAG + i], info[BAG + j] = info[BAG + j], info[BAG + i]
        info[BAG_POS] = 0
    piece = info[BAG + info[BAG_POS]]
    info[BAG_POS] += 1
    return piece


@njit(cache=True, nogil=True, inline="always")
def landing_row(heights: np.ndarray, piece: int, rot: int, col: int) -> int:
    """Row of the piece's bottom once dropped straight down at col onto the stack."""
    dest = 0
    for j in range(PIECE_WIDTH[piece, rot]):
        d = heights[col + j] - PIECE_BOTTOMS[piece, rot, j]
        if d > dest:
            dest = d
    return dest


@njit(cache=True, nogil=True)
def fill_action_mask(heights: np.ndarray, piece: int, height: int, mask: np.ndarray) -> int:
    """Write the legal-placement mask of piece into mask; return the number legal."""
    width = heights.shape[0]
    mask[:] = 0
    legal = 0
    for rot in range(NUM_ROTATIONS):
        if not ROTATION_VALID[piece, rot]:
            continue
        for col in range(width - PIECE_WIDTH[piece, rot] + 1):
            if landing_row(heights, piece, rot, col) + PIECE_HEIGHT[piece, rot] <= height:
                mask[rot * width + col] = 1
                legal += 1
    return legal


@njit(cache=True, nogil=True)
def has_legal_placement(heights: np.ndarray, piece: int, height: int) -> bool:
    """Whether some placement of piece ends with all its cells inside the board."""
    width = heights.shape[0]
    for rot in range(NUM_ROTATIONS):
        if not ROTATION_VALID[piece, rot]:
            continue
        for col in range(width - PIECE_WIDTH[piece, rot] + 1):
            if landing_row(heights, piece, rot, col) + PIECE_HEIGHT[piece, rot] <= height:
                return True
    return False


@njit(cache=True, nogil=True, inline="always")
def board_features(
    rows: np.ndarray, wall_height: int, width: int, height: int
) -> tuple[int, int, int, int, int, int]:
    """Row and column transitions, holes, cumulative wells, hole depth, rows with holes.

    Rows at and above wall_height must be empty. Definitions: docs/RULES.md (MDPTetris).
    """
    full_row = (1 << (width + 2)) - 1
    empty_row = 1 | (1 << (width + 1))
    transition_bits = (1 << (width + 1)) - 1
    cell_bits = full_row ^ empty_row

    # Bottom up: the floor is a full row below row 0.
    row_transitions = 2 * (height - wall_height)
    column_transitions = 0
    hole_depth = 0
    below = full_row
    over_hole = 0  # full cells whose run of full cells below them stands on a hole
    for i in range(wall_height):
        r = rows[i]
        row_transitions += popcount((r ^ (r >> 1)) & transition_bits)
        column_transitions += popcount(r ^ below)
        over_hole = r & (~below | over_hole)
        hole_depth += popcount(over_hole)
        below = r
    column_transitions += popcount(below ^ empty_row)

    # Top down: a hole is an empty cell under any full cell of its column.
    holes = 0
    rows_with_holes = 0
    wells = 0
    covered = 0
    for i in range(wall_height - 1, -1, -1):
        r = rows[i]
        row_holes = ~r & covered
        if row_holes:
            holes += popcount(row_holes)
            rows_with_holes += 1
        covered |= r
        # Each well cell adds 1 for itself and each empty cell under it: walk down with
        # all of this row's well cells at once, dropping each as its column meets a full cell.
        well_cells = ~r & (r << 1) & (r >> 1) & cell_bits
        k = i
        while well_cells:
            wells += popcount(well_cells)
            k -= 1
            if k < 0:
                break
            well_cells &= ~rows[k]
    return row_transitions, column_transitions, holes, wells, hole_depth, rows_with_holes


@njit(cache=True, nogil=True)
def column_heights(rows: np.ndarray, wall_height: int, width: int, out: np.ndarray) -> int:
    """Write each column's height (its top full cell + 1) into out; return the tallest."""
    out[:] = 0
    seen = 0
    tallest = 0
    for i in range(wall_height - 1, -1, -1):
        new = rows[i] & ~seen & (((1 << width) - 1) << 1)
        if new:
            if tallest == 0:
                tallest = i + 1
            seen |= new
            for c in range(width):
                if new & (1 << (c + 1)):
                    out[c] = i + 1
    return tallest


@njit(cache=True, nogil=True, inline="always")
def pattern_diversity(heights: np.ndarray, width: int) -> int:
    """How many of the height differences -2, -1, 0, 1, 2 occur between neighbouring columns.

    MDPTetris's get_diversity: the difference is the right column's height minus the left's.
    """
    seen = 0
    for c in range(width - 1):
        difference = heights[c + 1] - heights[c]
        if -2 <= difference <= 2:
            seen |= 1 << (difference + 2)
    return popcount(seen)


@njit(cache=True, nogil=True)
def classic_features(
    rows: np.ndarray, wall_height: int, width: int, heights: np.ndarray
) -> tuple[int, int, int]:
    """Holes, bumpiness and aggregate height of a board whose column heights are given."""
    holes = 0
    covered = 0
    for i in range(wall_height - 1, -1, -1):
        holes += popcount(~rows[i] & covered)
        covered |= rows[i]
    bumpiness = 0
    aggregate = heights[width - 1]
    for c in range(width - 1):
        aggregate += heights[c]
        bumpiness += abs(heights[c] - heights[c + 1])
    return holes, bumpiness, aggregate


@njit(cache=True, nogil=True, inline="always")
def write_features(
    fs: int,
    rows: np.ndarray,
    wall_height: int,
    width: int,
    height: int,
    landing_x2: int,
    lines: int,
    eroded_cells: int,
    heights_after: np.ndarray,
    out: np.ndarray,
) -> None:
    """Write the features of set fs for a board and the placement that made it into out.

    heights_after (the board's column heights) is read by the classic and dt sets only.
    """
    if fs == CLASSIC:
        holes, bumpiness, aggregate = classic_features(rows, wall_height, width, heights_after)
        out[0] = lines
        out[1] = holes
        out[2] = bumpiness
        out[3] = aggregate
        return
    rt, ct, holes, wells, depth, rows_with_holes = board_features(rows, wall_height, width, height)
    out[0] = 0.5 * landing_x2
    out[1] = lines * eroded_cells
    out[2] = rt
    out[3] = ct
    out[4] = holes
    out[5] = wells
    if fs in (BCTS, DT):
        out[6] = depth
        out[7] = rows_with_holes
    if fs == DT:
        out[8] = pattern_diversity(heights_after, width)


@njit(cache=True, nogil=True)
def feature_count(fs: int) -> int:
    """Number of features in set fs."""
    return FEATURE_COUNTS[fs]


@njit(cache=True, nogil=True, inline="always")
def overlay_piece(
    rows: np.ndarray, piece: int, rot: int, col: int, dest: int, full_row: int
) -> tuple[int, int]:
    """OR the piece into rows at dest; return (full rows made, piece cells in them)."""
    lines = 0
    cells = 0
    for k in range(PIECE_HEIGHT[piece, rot]):
        mask = ROW_MASKS[piece, rot, k]
        rows[dest + k] |= mask << (col + 1)
        if rows[dest + k] == full_row:
            lines += 1
            cells += popcount(mask)
    return lines, cells


@njit(cache=True, nogil=True, inline="always")
def remove_piece(rows: np.ndarray, piece: int, rot: int, col: int, dest: int) -> None:
    """Undo overlay_piece (the piece's cells were empty before it)."""
    for k in range(PIECE_HEIGHT[piece, rot]):
        rows[dest + k] ^= ROW_MASKS[piece, rot, k] << (col + 1)


@njit(cache=True, nogil=True)
def compact_rows(rows: np.ndarray, src: np.ndarray, start: int, top: int, full_row: int) -> int:
    """Copy src[:top] into rows without its full rows (all at or above start); return new top."""
    rows[:start] = src[:start]
    w = start
    for i in range(start, top):
        if src[i] != full_row:
            rows[w] = src[i]
            w += 1
    return w


@njit(cache=True, nogil=True)
def scan_placements(
    rows: np.ndarray,
    heights: np.ndarray,
    wall_height: int,
    piece: int,
    fs: int,
    weights: np.ndarray,
    record: bool,
    out_actions: np.ndarray,
    out_features: np.ndarray,
    out_lines: np.ndarray,
) -> tuple[int, int]:
    """Visit every legal placement of piece; return (how many, the best by weights or -1).

    The best maximises features @ weights, the first one on ties. With ``record``, the i-th
    placement's action, features and lines go to row i of the out arrays.
    """
    height = rows.shape[0]
    width = heights.shape[0]
    full_row = (1 << (width + 2)) - 1
    k = feature_count(fs)
    scratch = rows.copy()
    cleared = np.empty_like(rows)
    heights_after = np.empty_like(heights)
    features = np.empty(MAX_FEATURES)
    n = 0
    best_action = -1
    best_value = -np.inf
    for rot in range(NUM_ROTATIONS):
        if not ROTATION_VALID[piece, rot]:
            continue
        ph = PIECE_HEIGHT[piece, rot]
        pw = PIECE_WIDTH[piece, rot]
        for col in range(width - pw + 1):
            dest = landing_row(heights, piece, rot, col)
            if dest + ph > height:
                continue
            # The afterstate: scratch with the piece, or cleared if that filled rows.
            top = max(wall_height, dest + ph)
            lines, cells = overlay_piece(scratch, piece, rot, col, dest, full_row)
            board = scratch
            if lines:
                top = compact_rows(cleared, scratch, dest, top, full_row)
                board = cleared
            if fs in (CLASSIC, DT):
                if lines:
                    column_heights(board, top, width, heights_after)
                else:
                    heights_after[:] = heights
                    for j in range(pw):
                        heights_after[col + j] = dest + PIECE_TOPS[piece, rot, j]
            write_features(
                fs,
                board,
                top,
                width,
                height,
                2 * dest + ph - 1,
                lines,
                cells,
                heights_after,
                features,
            )
            value = 0.0
            for f in range(k):
                value += weights[f] * features[f]
            if value > best_value:
                best_value = value
                best_action = rot * width + col
            if record:
                out_actions[n] = rot * width + col
                for f in range(k):  # an explicit loop: a slice copy here costs a quarter
                    out_features[n, f] = features[f]
                out_lines[n] = lines
            remove_piece(scratch, piece, rot, col, dest)
            n += 1
    return n, best_action


@njit(cache=True, nogil=True)
def fill_afterstate_boards(
    rows: np.ndarray,
    heights: np.ndarray,
    wall_height: int,
    piece: int,
    actions: np.ndarray,
    out_boards: np.ndarray,
) -> None:
    """Write the board after each (legal) placement in actions: uint8, top row first."""
    height = rows.shape[0]
    width = heights.shape[0]
    full_row = (1 << (width + 2)) - 1
    scratch = rows.copy()
    cleared = np.empty_like(rows)
    for n in range(actions.shape[0]):
        rot = actions[n] // width
        col = actions[n] % width
        dest = landing_row(heights, piece, rot, col)
        top = max(wall_height, dest + PIECE_HEIGHT[piece, rot])
        board = scratch
        if overlay_piece(scratch, piece, rot, col, dest, full_row)[0]:
            top = compact_rows(cleared, scratch, dest, top, full_row)
            board = cleared
        for i in range(height):
            r = board[i] if i < top else 0
            for c in range(width):
                out_boards[n, height - 1 - i, c] = (r >> (c + 1)) & 1
        remove_piece(scratch, piece, rot, col, dest)


@njit(cache=True, nogil=True)
def reset_game(
    rows: np.ndarray,
    heights: np.ndarray,
    colours: np.ndarray,
    info: np.ndarray,
    rng: np.ndarray,
    seed: np.uint64,
    randomizer: int,
) -> None:
    """Empty the board, seed the PRNG and draw the current and next pieces."""
    width = heights.shape[0]
    rows[:] = 1 | (1 << (width + 1))
    heights[:] = 0
    colours[:] = 0
    info[:] = 0
    info[RANDOMIZER] = randomizer
    info[BAG_POS] = NUM_PIECES
    rng[0] = seed
    info[CURRENT] = draw_piece(info, rng)
    info[NEXT] = draw_piece(info, rng)
    info[GAME_OVER] = not has_legal_placement(heights, info[CURRENT], rows.shape[0])


@njit(cache=True, nogil=True)
def load_board(
    rows: np.ndarray, heights: np.ndarray, colours: np.ndarray, info: np.ndarray, piece: int
) -> None:
    """Rebuild rows, heights and wall height from colours; make piece the current one."""
    height, width = colours.shape
    for i in range(height):
        r = 1 | (1 << (width + 1))
        for c in range(width):
            if colours[i, c]:
                r |= 1 << (c + 1)
        rows[i] = r
    info[WALL_HEIGHT] = column_heights(rows, height, width, heights)
    info[CURRENT] = piece
    info[LAST_LANDING_X2] = 0
    info[LAST_ERODED] = 0
    info[LAST_LINES] = 0
    info[GAME_OVER] = not has_legal_placement(heights, piece, height)


@njit(cache=True, nogil=True)
def place(
    rows: np.ndarray,
    heights: np.ndarray,
    colours: np.ndarray,
    info: np.ndarray,
    rng: np.ndarray,
    action: int,
    track_colours: bool,
) -> int:
    """Place the current piece by action and draw the next; return lines cleared, -1 if illegal.

    The game is over when the new current piece has no legal placement.
    """
    height = rows.shape[0]
    width = heights.shape[0]
    piece = info[CURRENT]
    rot = action // width
    col = action % width
    if info[GAME_OVER] or action < 0 or rot >= NUM_ROTATIONS or not ROTATION_VALID[piece, rot]:
        return -1
    pw = PIECE_WIDTH[piece, rot]
    ph = PIECE_HEIGHT[piece, rot]
    if col + pw > width:
        return -1
    dest = landing_row(heights, piece, rot, col)
    if dest + ph > height:
        return -1
    full_row = (1 << (width + 2)) - 1
    empty_row = 1 | (1 << (width + 1))
    lines, cells = overlay_piece(rows, piece, rot, col, dest, full_row)
    if track_colours:
        for k in range(ph):
            mask = ROW_MASKS[piece, rot, k]
            for j in range(pw):
                if mask & (1 << j):
                    colours[dest + k, col + j] = piece + 1
    top = max(info[WALL_HEIGHT], dest + ph)
    if lines:
        w = dest
        for i in range(dest, top):
            if rows[i] != full_row:
                rows[w] = rows[i]
                if track_colours:
                    colours[w] = colours[i]
                w += 1
        rows[w:top] = empty_row
        if track_colours:
            colours[w:top] = 0
        info[WALL_HEIGHT] = column_heights(rows, w, width, heights)
    else:
        for j in range(pw):
            heights[col + j] = dest + PIECE_TOPS[piece, rot, j]
        info[WALL_HEIGHT] = top
    info[LINES] += lines
    info[SCORE] += SCORE_TABLE[lines]
    info[PIECES] += 1
    info[LAST_LANDING_X2] = 2 * dest + ph - 1
    info[LAST_ERODED] = cells
    info[LAST_LINES] = lines
    info[CURRENT] = info[NEXT]
    info[NEXT] = draw_piece(info, rng)
    info[GAME_OVER] = not has_legal_placement(heights, info[CURRENT], height)
    return lines


@njit(cache=True, nogil=True)
def step_with_mask(
    rows: np.ndarray,
    heights: np.ndarray,
    colours: np.ndarray,
    info: np.ndarray,
    rng: np.ndarray,
    action: int,
    mask: np.ndarray,
) -> int:
    """place() then the new piece's action mask, in one call for the env's hot path."""
    lines = place(rows, heights, colours, info, rng, action, True)
    fill_action_mask(heights, info[CURRENT], rows.shape[0], mask)
    return lines


@njit(cache=True, nogil=True)
def play_linear(
    rows: np.ndarray,
    heights: np.ndarray,
    colours: np.ndarray,
    info: np.ndarray,
    rng: np.ndarray,
    weights: np.ndarray,
    fs: int,
    max_pieces: int,
    track_colours: bool,
) -> int:
    """Play up to max_pieces greedy placements (or to game over); return lines cleared."""
    no_actions = np.empty(0, np.int64)
    no_features = np.empty((0, MAX_FEATURES), np.float32)
    lines = 0
    for _ in range(max_pieces):
        if info[GAME_OVER]:
            break
        _, action = scan_placements(
            rows,
            heights,
            info[WALL_HEIGHT],
            info[CURRENT],
            fs,
            weights,
            False,
            no_actions,
            no_features,
            no_actions,
        )
        lines += place(rows, heights, colours, info, rng, action, track_colours)
    return lines


@njit(cache=True, nogil=True)
def play_linear_recording(
    rows: np.ndarray,
    heights: np.ndarray,
    colours: np.ndarray,
    info: np.ndarray,
    rng: np.ndarray,
    weights: np.ndarray,
    fs: int,
    out_actions: np.ndarray,
) -> int:
    """play_linear() for up to len(out_actions) pieces, writing each action played there.

    Returns the number of pieces played; the placements are play_linear()'s exactly.
    """
    no_actions = np.empty(0, np.int64)
    no_features = np.empty((0, MAX_FEATURES), np.float32)
    played = 0
    while played < out_actions.shape[0] and not info[GAME_OVER]:
        _, action = scan_placements(
            rows,
            heights,
            info[WALL_HEIGHT],
            info[CURRENT],
            fs,
            weights,
            False,
            no_actions,
            no_features,
            no_actions,
        )
        place(rows, heights, colours, info, rng, action, True)
        out_actions[played] = action
        played += 1
    return played


@njit(cache=True, nogil=True, parallel=True)
def play_linear_games_kernel(
    weights: np.ndarray,
    seeds: np.ndarray,
    fs: int,
    piece_cap: int,
    width: int,
    height: int,
    randomizer: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One greedy game per seed, in parallel; return (lines, pieces) per game."""
    n = seeds.shape[0]
    lines = np.zeros(n, np.int64)
    pieces = np.zeros(n, np.int64)
    cap = piece_cap if piece_cap > 0 else np.iinfo(np.int64).max
    for g in prange(n):
        rows = np.empty(height, np.int64)
        heights = np.empty(width, np.int64)
        colours = np.empty((0, width), np.int8)
        info = np.empty(INFO_SIZE, np.int64)
        rng = np.empty(1, np.uint64)
        reset_game(rows, heights, colours, info, rng, seeds[g], randomizer)
        play_linear(rows, heights, colours, info, rng, weights, fs, cap, False)
        lines[g] = info[LINES]
        pieces[g] = info[PIECES]
    return lines, pieces
