"""A run's learning curve as a small line: the run list and the admin draw the same one."""

from __future__ import annotations

WIDTH, HEIGHT = 120, 28


def sparkline_points(curve: list[list[float]], *, width: int = WIDTH, height: int = HEIGHT) -> str:
    """An SVG polyline's points for a run's stored curve of (episode, mean lines) pairs:
    episodes across, mean lines from the lowest (bottom) to the highest (top)."""
    if len(curve) < 2:
        return ""
    xs, ys = [point[0] for point in curve], [point[1] for point in curve]
    x_span, y_low = (max(xs) - min(xs)) or 1, min(ys)
    y_span = (max(ys) - y_low) or 1
    return " ".join(
        f"{(x - xs[0]) / x_span * width:.1f},{height - (y - y_low) / y_span * height:.1f}"
        for x, y in zip(xs, ys, strict=True)
    )
