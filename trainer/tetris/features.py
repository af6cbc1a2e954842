"""Afterstate feature sets and the published linear controllers over them.

Definitions follow MDPTetris (docs/RULES.md has them in full).
"""

import numpy as np

DELLACHERIE_FEATURES = (
    "landing_height",
    "eroded_piece_cells",
    "row_transitions",
    "column_transitions",
    "holes",
    "cumulative_wells",
)

BCTS_FEATURES = (*DELLACHERIE_FEATURES, "hole_depth", "rows_with_holes")

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "classic": ("lines", "holes", "bumpiness", "aggregate_height"),
    "dellacherie": DELLACHERIE_FEATURES,
    "bcts": BCTS_FEATURES,
    "dt": (*BCTS_FEATURES, "pattern_diversity"),
}

# Ids the kernels branch on; the order of FEATURE_SETS' keys.
FEATURE_SET_IDS: dict[str, int] = {name: i for i, name in enumerate(FEATURE_SETS)}
CLASSIC, DELLACHERIE, BCTS, DT = (
    FEATURE_SET_IDS[n] for n in ("classic", "dellacherie", "bcts", "dt")
)
MAX_FEATURES = max(len(names) for names in FEATURE_SETS.values())

DELLACHERIE_WEIGHTS = np.array([-1.0, 1.0, -1.0, -1.0, -4.0, -1.0])
"""Dellacherie's hand-tuned controller (Fahey 2003), ordered as FEATURE_SETS["dellacherie"]."""

BCTS_WEIGHTS = np.array([-12.63, 6.60, -9.22, -19.77, -13.08, -10.49, -1.61, -24.04])
"""Thiery & Scherrer's BCTS controller (2009), ordered as FEATURE_SETS["bcts"]."""

for _weights in (DELLACHERIE_WEIGHTS, BCTS_WEIGHTS):
    _weights.flags.writeable = False


def feature_set_id(name: str) -> int:
    """The kernel id of a feature set, or ValueError naming the known ones."""
    try:
        return FEATURE_SET_IDS[name]
    except KeyError:
        raise ValueError(
            f"unknown feature set {name!r}; expected one of {list(FEATURE_SETS)}"
        ) from None
