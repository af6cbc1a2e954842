"""A cem run's training curve, from the metrics.jsonl that bench/learning.py writes.

Per window of `--every` training minutes: the generations it holds, the median of their
population mean and elite mean lines (on the training board), the mean weights' spread
and the added noise. Writes a PNG beside the file and prints a Markdown table.

    .venv/bin/python bench/cem_curve.py bench/out/learning-record-floor/metrics.jsonl --every 15
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def main() -> None:
    """Read the metrics, print the table, write the plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path)
    parser.add_argument("--every", type=float, default=15.0, help="window, training minutes")
    parser.add_argument("--title", default="")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.metrics.read_text().splitlines() if line]
    rows = [row for row in rows if "cem/generation" in row]
    minutes = np.array([row["wall_time"] / 60 for row in rows])
    population = np.array([row["cem/population_mean_lines"] for row in rows])
    elite = np.array([row["cem/elite_mean_lines"] for row in rows])
    spread = np.array([row["cem/weight_std"] for row in rows])
    height = rows[-1]["cem/train_height"]

    print(
        "| training min | generations | population mean lines (median) "
        "| elite mean lines (median) | weight std (last) | noise (last) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for start in np.arange(0, minutes[-1], args.every):
        inside = (minutes >= start) & (minutes < start + args.every)
        if not inside.any():
            continue
        last = rows[int(np.flatnonzero(inside)[-1])]
        print(
            f"| {start:g} to {start + args.every:g} | {inside.sum()} "
            f"| {np.median(population[inside]):,.0f} | {np.median(elite[inside]):,.0f} "
            f"| {last['cem/weight_std']:.3f} | {last['cem/noise']:.2f} |"
        )

    figure = Figure(figsize=(8, 5))
    lines_axes, spread_axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    lines_axes.plot(minutes, population, ".", markersize=2, alpha=0.4, label="population mean")
    lines_axes.plot(minutes, elite, ".", markersize=2, alpha=0.4, label="elite mean")
    lines_axes.set_yscale("log")
    lines_axes.set_ylabel(f"lines per game, {height}-row board")
    lines_axes.legend()
    lines_axes.grid(True, which="both", alpha=0.3)
    lines_axes.set_title(args.title or str(args.metrics.parent.name), fontsize=10)
    spread_axes.plot(minutes, spread)
    spread_axes.set_yscale("log")
    spread_axes.set_ylabel("weight std")
    spread_axes.set_xlabel("training minutes")
    spread_axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    out = args.metrics.with_name("training-curve.png")
    figure.savefig(out, dpi=110)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
