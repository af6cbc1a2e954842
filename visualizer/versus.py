"""What a side-by-side play can pit against each other: the form on the play and compare pages."""

from __future__ import annotations

from trainer import plays, selectors
from trainer.models import Checkpoint, Run


def versus_choices(runs: list[Run], current: Checkpoint | None = None) -> list[dict[str, str]]:
    """The sides to choose from, as {value, label}: `current` first, then each run's kept
    (best-evaluated) and latest checkpoints, then the reference controllers. The runs are
    ones the viewer may see."""
    choices, seen = [], set()

    def add(checkpoint: Checkpoint | None, label: str) -> None:
        if checkpoint is not None and checkpoint.pk not in seen:
            seen.add(checkpoint.pk)
            choices.append({"value": f"checkpoint:{checkpoint.pk}", "label": label})

    if current is not None:
        add(current, f"this checkpoint (episode {current.episode:,})")
    for run in runs:
        best = selectors.best_checkpoint(run)
        add(best, f"{run.name}: kept policy (episode {best.episode:,})" if best else "")
        latest = selectors.latest_checkpoint(run)
        add(latest, f"{run.name}: latest (episode {latest.episode:,})" if latest else "")
    for name, label in plays.REFERENCE_CONTROLLERS.items():
        choices.append({"value": f"controller:{name}", "label": f"{label} (reference)"})
    return choices
