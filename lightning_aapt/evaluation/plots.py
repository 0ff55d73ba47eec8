"""Pictures of evaluation results: drift curves relative to their first window, as a matplotlib figure."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from lightning_aapt.metrics.drift import DriftReport


def drift_figure(report: DriftReport) -> Figure:
    """Every curve divided by its first window on a log2 axis, against the windows' centres (seconds when the frame
    rate is known, else frames), each named with its last / first ratio; the grey line marks 1x (no drift). A
    figure outside pyplot's global state: `savefig` it, or log it (`SummaryWriter.add_figure`)."""
    scale = report.fps or 1.0
    xs = [(s + report.window_frames / 2) / scale for s in report.starts]  # window centres
    figure = Figure(figsize=(8.0, 4.5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for i, (name, values) in enumerate(report.curves.items()):
        if values[0] <= 0:
            continue  # no first window to divide by (a curve that starts at 0: saturation, agent lost)
        ratios = [max(v / values[0], 1e-3) for v in values]
        axes.plot(xs, ratios, color=f"C{i % 10}", linestyle="-" if i < 10 else "--", linewidth=1.5,
                  label=f"{name} {ratios[-1]:.3g}x")  # ten colours, then dashed
    axes.axhline(1.0, color="0.7", linewidth=1)
    axes.set_yscale("log", base=2)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axes.set_xlabel(f"{'seconds' if report.fps else 'frames'} (window centres, {report.window_frames}-frame windows)")
    axes.set_ylabel("metric / first window")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    return figure
