"""Pictures of evaluation results: drift curves relative to their first window."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from lightning_aapt.metrics.drift import DriftReport

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194)]


def plot_curves(report: DriftReport, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """An (H, W, 3) uint8 line plot of every curve divided by its first window, on a log2 axis, against time
    (seconds when the frame rate is known, else frames); the grey line marks 1x (no drift)."""
    width, height = size
    left, right, top, bottom = 48, 180, 16, 32
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    scale = report.fps or 1.0
    xs = [(s + report.window_frames / 2) / scale for s in report.starts]  # window centres
    curves = {k: [float(np.log2(max(v / c[0], 1e-3))) for v in c] for k, c in report.curves.items() if c[0] > 0}
    y_lo = min([-1.0, *(min(c) for c in curves.values())])
    y_hi = max([1.0, *(max(c) for c in curves.values())])
    x_max = max(xs[-1], 1e-9)

    def point(x: float, y: float) -> tuple[float, float]:
        return (left + (width - left - right) * x / x_max,
                height - bottom - (height - top - bottom) * (y - y_lo) / (y_hi - y_lo))

    draw.line([point(0, y_lo), point(x_max, y_lo)], fill="black")
    draw.line([point(0, y_lo), point(0, y_hi)], fill="black")
    draw.line([point(0, 0), point(x_max, 0)], fill=(180, 180, 180))
    for value in (y_lo, 0.0, y_hi):
        draw.text((4, point(0, value)[1] - 6), f"{2 ** value:.3g}x", fill="black")
    draw.text((left, height - bottom + 8), f"time 0 .. {x_max:.1f} {'s' if report.fps else 'frames'} "
              "(window centres); metric / first window, log scale", fill="black")
    for i, (name, values) in enumerate(curves.items()):
        colour = PALETTE[i % len(PALETTE)]
        draw.line([point(x, y) for x, y in zip(xs, values, strict=True)], fill=colour, width=2)
        draw.text((width - right + 8, top + 14 * i), f"{name} {2 ** values[-1]:.3g}x", fill=colour)
    return np.asarray(image)
