"""Long streams on the toy world: the one long-stream evaluator of the pipeline's report, `eval` and the drift
callback, and the one writer of its tables.

Notation: B scenes, T frames, K real context frames, S pixel size, w frames per window.

The first B validation scenes are streamed T frames after K real ones, driven by the scripted policy that made them
(continued), next to the world's re-rendering of the same actions (the truth); every window of w frames is scored
(`metrics.drift`: agent error and loss, action following, sharpness, pixel error, the objects, and the Fréchet
distance to the truth of the *next* B scenes: independent real video at the same times). Beside a generator, what
it is compared with, scored the same way: the floors (the last context frame repeated; perfect physics from the true
state, the sprites' velocities redrawn) and the truth itself (what a perfect generator scores).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from lightning_aapt.backbone import CausalVideoDiT
from lightning_aapt.evaluation.toy import (
    ToyStream,
    floor_videos,
    score_toy_video,
    stream_toy_clips,
    teacher_forced_toy_clips,
    true_videos,
    validation_clips,
)
from lightning_aapt.evaluation.transfer import amplitude_transfer
from lightning_aapt.metrics.drift import DriftReport
from lightning_aapt.tables import markdown_table


@dataclass
class Row:
    """One line of a long-stream report: a model (or a floor, or the truth) and its scores."""

    name: str
    steps: str  # network evaluations per frame ("–" for a floor)
    curves: DriftReport
    ms: str = "–"  # network time per frame (all scenes together), "–" where not timed
    transfer: dict | None = None  # one-step amplitude transfer (`evaluation.transfer`)


class ToyLongStreams:
    """The scenes, reference and scoring of long streams on a toy-world dataset.

    Args:
        data_dir: the toy-world dataset (its world, codec and text encoder).
        clips: B, the scenes streamed (the next B make the Fréchet reference).
        frames: T, each stream's length, context included.
        context_frames: K, the real frames each stream starts from.
        window: w, frames per scored window.
        extractor: video features for the Fréchet distance (None: none).
        fps: frames per second, for the reports' seconds (None: frames only).
    """

    def __init__(self, data_dir: str | Path, clips: int, frames: int, context_frames: int, window: int,
                 extractor=None, fps: float | None = None) -> None:
        from lightning_aapt.data import dataset_codec
        from lightning_aapt.world.dataset import spec_from_manifest

        self.toy, self.codec = spec_from_manifest(data_dir), dataset_codec(data_dir)
        self.clips, self.frames, self.context, self.window = clips, frames, context_frames, window
        self.extractor, self.fps = extractor, fps
        scenes, actions = validation_clips(self.toy, 2 * clips, frames)  # (2B, T, 2): the second half, the reference
        self.reference = true_videos(scenes[clips:], actions[clips:], self.toy.world)  # (B, T, 3, S, S)
        self.scenes, self.actions = scenes[:clips], actions[:clips]
        self.features: dict = {}  # the reference windows' features, extracted once for every video scored
        self.objects = None  # the sprites' truth: the same scenes re-render the same truth for every stream

    def stream(self, model: CausalVideoDiT, steps: int, shift: float, forcing: str = "student",
               seed: int = 0) -> ToyStream:
        """The scenes streamed by `model` (`steps` Euler steps per frame on the grid shifted by `shift`), or, with
        `forcing="teacher"`, every frame made from the true frames before it (no exposure bias; not timed)."""
        make = stream_toy_clips if forcing == "student" else teacher_forced_toy_clips
        stream = make(model, self.codec, self.toy.text_encoder(), self.toy.world, self.scenes, self.actions,
                      steps=steps, shift=shift, seed=seed, context_frames=self.context)
        self.objects = stream.objects if self.objects is None else self.objects
        return replace(stream, objects=self.objects)

    def score(self, video: torch.Tensor, stream: ToyStream, latents: torch.Tensor | None = None,
              real_latents: torch.Tensor | None = None) -> DriftReport:
        """Every window of `video` (B, T, 3, S, S) of the stream's scenes (`latents` and the reference's
        `real_latents` add the latent-space curves)."""
        return score_toy_video(video, stream, self.window, self.extractor, self.reference, latents, real_latents,
                               self.fps, reference_features=self.features)

    def compared_with(self, stream: ToyStream, real_latents: torch.Tensor | None = None) -> dict[str, DriftReport]:
        """The floors and the truth itself, scored as the stream is (with the latent-space curves when the
        reference's `real_latents` are given): {"repeat", "perfect_physics", "truth"}."""
        videos = {**floor_videos(stream, self.scenes, self.actions, self.toy.world), "truth": stream.truth}
        return {name: self.score(video, stream, None if real_latents is None else self.codec.encode(video),
                                 real_latents) for name, video in videos.items()}

    def transfer(self, model: CausalVideoDiT, steps: int, shift: float, clip_frames: int, seed: int = 0) -> dict:
        """One step's amplitude transfer of the objects and the agent on the scenes' first `clip_frames` frames."""
        return amplitude_transfer(model, self.codec, self.toy.text_encoder(), self.toy.world, self.scenes,
                                  self.actions[:, :clip_frames], steps=steps, shift=shift, seed=seed,
                                  context_frames=self.context)



def comparison_rows(reports: dict[str, DriftReport]) -> list[Row]:
    """The rows of what a generator is compared with (`ToyLongStreams.compared_with`): the floors, then the truth."""
    return [Row(f"*{name.replace('_', ' ')}* (floor)", "–", reports[name]) for name in ("repeat", "perfect_physics")
            ] + [Row("*the truth itself*", "–", reports["truth"])]


def cell(curves: DriftReport, key: str, digits: int = 2) -> str:
    """A report cell: a curve's first window → last window, or "–" when the stream has no such curve."""
    values = curves.curves.get(key)
    return "–" if not values else f"{values[0]:.{digits}f} → {values[-1]:.{digits}f}"


def long_stream_markdown(rows: list[Row], frames: int, context: int, clips: int, window: int,
                         clip_frames: int) -> list[str]:
    """The report of long streams as Markdown lines: the streams' table, the objects' table and the drift curves of
    the agent and the objects, one row per model, floor and the truth."""
    fd = next((k for k in (rows[0].curves.curves if rows else {}) if k.startswith("fd")), "fd")
    lines = [f"## Long streams: {frames} frames ({frames // clip_frames}x the {clip_frames}-frame training clips) "
             f"after {context} real context frames, {clips} validation scenes, truth re-rendered by the toy world",
             "", f"Each cell: first window → last window ({window} frames each); agent error also over the whole "
             f"stream. Agent lost: the share of scenes whose agent is off by a quarter of the frame somewhere in the "
             f"window. Agent mass: the agent's white mass against the truth's (faded < 1; a second agent about 2). "
             f"{fd}: {clips} streams against {clips} other scenes' truth.", ""]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    lines += markdown_table(
        ("model", "NFE/frame", "agent error px (whole stream)", "agent lost", "agent mass", "action following px",
         "sharpness", "pixel MSE", fd, "ms/frame"),
        ((r.name, r.steps, f"{cell(r.curves, 'agent_error_px', 2)} ({mean(r.curves.curves['agent_error_px']):.2f})",
          cell(r.curves, "agent_lost", 2), cell(r.curves, "agent_mass", 2), cell(r.curves, "action_following_px", 2),
          cell(r.curves, "sharpness", 2), cell(r.curves, "pixel_mse_truth", 4), cell(r.curves, fd, 3), r.ms)
         for r in rows))
    lines += object_table(rows, frames - context, window)
    starts = rows[0].curves.starts if rows else []
    for key, title, digits in (("agent_error_px", "agent error px", 2), ("objects_kept", "objects kept", 2)):
        lines += ["", f"Drift curves: {title} per {window}-frame window (first frame of each window).", "",
                  *markdown_table(("model", *starts), ((r.name, *(f"{v:.{digits}f}" for v in r.curves.curves[key]))
                                                       for r in rows if key in r.curves.curves))]
    return lines


def object_table(rows: list[Row], generated: int, window: int) -> list[str]:
    """The report's object rows (`lightning_aapt.metrics.objects`, `lightning_aapt.evaluation.transfer`): per
    model, the objects kept and their mass, lifetimes, position error, the truth's edges kept and spurious detail,
    and the one-step amplitude transfer of objects and agent."""
    lines = ["", f"Objects: the sprites, read from each generated frame by colour against the re-rendered truth. Kept: "
             f"at least half the object's colour mass within its radius + 3 px of its true place; mass: the colour "
             f"mass anywhere in the frame / the truth's; lifetime: generated frames until the object stays below "
             f"half its mass (near its place / anywhere) for 3 frames, {generated} if never; alive: the share of "
             f"objects still alive after 10 / 20 / {generated} frames; position: between the generated and the "
             f"true object (a lost one counts as the frame size); detail kept / spurious: the truth's edges held, "
             f"and detail where the truth has none. a_out(1): one step's output contrast of a body given every "
             f"input frame at full contrast (teacher-forced; half-life ln 0.5 / ln a_out(1) frames); error vs "
             f"copy: teacher-forced pixel error on the body where it moves, against copying the previous true "
             f"frame. First window → last ({window} frames each).", ""]
    table = []
    for r in rows:
        s = r.curves.summary
        if not s:
            continue
        alive = " / ".join(f"{s[k]:.2f}" for k in (f"alive_after_{n}" for n in (10, 20, generated)) if k in s)
        if r.transfer:
            at_one = {k: v["a_out"][v["amplitudes"].index(1.0)] for k, v in r.transfer.items()}
            dynamics = (f"{at_one['objects']:.3f} / {at_one['agent']:.3f}",
                        f"{r.transfer['objects']['error_vs_copy']:.2f} / {r.transfer['agent']['error_vs_copy']:.2f}")
        else:
            dynamics = ("–", "–")
        table.append((r.name, cell(r.curves, "objects_kept"), cell(r.curves, "object_mass"),
                      f"{s['median_lifetime']:.0f} / {s['median_lifetime_anywhere']:.0f}", alive,
                      cell(r.curves, "object_position_px"), cell(r.curves, "detail_kept"),
                      cell(r.curves, "spurious_detail", 3), *dynamics))
    return lines + markdown_table(
        ("model", "objects kept", "object mass", "median lifetime near / anywhere", "alive after 10 / 20 / end",
         "object position px", "detail kept", "spurious detail", "a_out(1) objects / agent",
         "error vs copy objects / agent"), table)
