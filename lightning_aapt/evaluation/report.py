"""The evaluation report of a checkpoint (`eval`): `report.json`, `report.md`, `drift_plot.png` and
`drift_stream.gif` (generated | truth), each written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lightning_aapt.evaluation.drift import Drift
from lightning_aapt.evaluation.long_streams import Row, comparison_rows, long_stream_markdown
from lightning_aapt.evaluation.plots import drift_figure
from lightning_aapt.files import atomic_path, write_atomic
from lightning_aapt.tables import markdown_table
from lightning_aapt.video import to_uint8, write_video


def markdown(result: dict) -> str:
    fd, drift = result["fd"], result["drift"]
    lines = [f"# Evaluation of `{result['checkpoint']}`", "",
             f"{result['model']}, global step {result['global_step']}, sampler steps per frame "
             f"{result['steps_per_frame']}.", "", "## Generated vs real clips", "",
             *markdown_table(("metric", "value"), ((k, f"{v:.6g}") for k, v in fd["values"].items()))]
    lines += ["", "Protocol:", ""] + [f"- {k}: {v}" for k, v in fd["protocol"].items()]
    if drift is None:
        lines += ["", "No long-horizon drift: a bidirectional (stage-0) model samples whole clips jointly and cannot "
                  "stream past them; evaluate a causal stage (1-3) for drift and amplitude transfer."]
        return "\n".join(lines) + "\n"
    curves = drift["curves"]
    fps = drift.get("fps") or 1
    lines += ["", f"## Long-horizon drift: {result['drift_frames']} frames ({result['horizon']}x the clip), "
              f"{result['drift_clips']} streams, windows of {drift['window_frames']} frames", ""]
    rows = [(k, f"{start / fps:.2f}-{(start + drift['window_frames']) / fps:.2f}",
             *(f"{curves[n][k]:.4g}" for n in curves)) for k, start in enumerate(drift["starts"])]
    rows.append(("last / first", "", *(f"{drift['ratios'][n]:.3g}" for n in curves)))
    floor = result.get("drift_floor")
    if floor:
        rows += [(f"truth itself: {which} window", "", *(f"{floor['curves'][n][at]:.4g}" for n in curves))
                 for which, at in (("first", 0), ("last", -1))]
    lines += markdown_table(("window", "seconds", *curves), rows)
    summary = drift.get("summary") or {}
    if summary:
        lines += ["", "Objects over the whole stream (`lightning_aapt.metrics.objects`): "
                  + ", ".join(f"{k} {v:.3g}" for k, v in summary.items()) + "."]
    for bodies, values in (result.get("transfer") or {}).items():
        pairs = ", ".join(f"{a:g} → {b:.3f}" for a, b in zip(values["amplitudes"], values["a_out"], strict=True))
        lines += ["", f"One-step amplitude transfer of the {bodies} (`lightning_aapt.evaluation.transfer`; a → "
                  f"a_out(a), teacher-forced): {pairs}; half-life {values['half_life']:.3g} frames; pixel error on "
                  f"the {bodies} {values['error_vs_copy']:.3f}x copying the previous frame."]
    lines += ["", "\"Truth itself\" streams the toy world's re-rendered truth through the same metrics: what a "
              "perfect generator would score. `drift_plot.png`: every curve divided by its first window; "
              "`drift_stream.gif`: the first stream, generated left, truth right (toy world)."]
    return "\n".join(lines) + "\n"


def long_stream_section(result: dict, drift: Drift) -> str:
    """The drift streams beside the floors and the truth itself, in the pipeline report's tables
    (`evaluation.long_streams`): one row for the checkpoint."""
    B, T = drift.generated.shape[:2]
    rows = [Row(result["model"], str(result["steps_per_frame"]), drift.report, "–", result.get("transfer")),
            *comparison_rows(drift.compared)]
    lines = long_stream_markdown(rows, T, drift.report.starts[0], B, drift.report.window_frames,
                                 T // result["horizon"])
    return "\n" + "\n".join(lines) + "\n"


def write_report(out: Path, result: dict, drift: Drift | None) -> str:
    """Write the report files to `out` (created; the drift plot and stream only with a `drift`); returns the
    Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    if drift is not None and drift.compared:
        text += long_stream_section(result, drift)
    write_atomic(out / "report.json", json.dumps(result, indent=2).encode())
    write_atomic(out / "report.md", text.encode())
    if drift is None:
        return text
    with atomic_path(out / "drift_plot.png") as tmp:
        drift_figure(drift.report).savefig(tmp, format="png")
    video = drift.generated[0].clamp(0, 1)
    if drift.truth is not None:
        video = torch.cat([video, drift.truth[0]], dim=-1)
    write_video(out / "drift_stream.gif", to_uint8(video), fps=drift.report.fps or 8, scale=4)
    return text
