"""`python -m lightning_aapt pipeline`: the stages of a pipeline YAML in order, each from the previous one's
checkpoint (resumable), then long streams of the causal stages scored against the toy world's truth."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from lightning_aapt.cli.lightning import run_lightning
from lightning_aapt.cli.signature import run_function
from lightning_aapt.errors import ConfigError
from lightning_aapt.files import write_atomic
from lightning_aapt.tables import markdown_table


def pipeline(config: Path, experiment_dir: Path | None = None, overrides: list[str] | None = None) -> int:
    """Run AAPT's stages in order, each starting from the previous; finished stages are skipped, interrupted ones
    resumed; then the report of long streams. LightningCLI arguments after `--` go to every stage.

    Args:
        config: the pipeline YAML (experiments/pipeline.yaml).
        experiment_dir: where the stages' runs go (default: the YAML's experiment_dir).
        overrides: (after `--`) LightningCLI arguments added to every stage, e.g. -- --trainer.max_steps=5.
    """
    import json

    overrides = overrides or []
    spec = read_pipeline(config)
    check_report(spec, config)  # before hours of training, not after
    exp = Path(experiment_dir or spec["experiment_dir"])
    exp.mkdir(parents=True, exist_ok=True)
    finished = {}
    for stage in spec["stages"]:
        name = stage["name"]
        done = exp / name / "DONE.json"
        extra = [*stage.get("args", []), *spec.get("args", []), *overrides]
        record = finished_record(done)
        if record is not None:
            check_same_data(exp / name, stage_data_dir(stage["config"], extra))
            finished[name] = record
            print(f"[pipeline] {name}: finished earlier ({done}), skipped")
            continue
        run = ["fit", "--config", str(stage["config"]), f"--trainer.logger.init_args.save_dir={exp}",
               f"--trainer.logger.init_args.name={name}", f"--trainer.default_root_dir={exp / name}"]
        for key, setting in STAGE_LINKS.items():
            if stage.get(key):
                run.append(f"--model.init_args.{setting}={exp / stage[key] / 'checkpoints' / 'last.ckpt'}")
        last = exp / name / "checkpoints" / "last.ckpt"
        if last.exists():
            run += ["--ckpt_path", str(last)]
            print(f"[pipeline] {name}: resuming from {last}")
        run += extra
        print(f"[pipeline] {name}: python -m lightning_aapt {' '.join(run)}")
        start = time.perf_counter()
        cli = run_lightning(run)
        metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
        record = {"seconds": round(time.perf_counter() - start, 1), "global_step": cli.trainer.global_step,
                  "metrics": metrics, "checkpoint": str(last)}
        write_atomic(done, json.dumps(record, indent=2).encode())
        finished[name] = record
    summary = long_stream_summary(exp, spec, finished)
    print(summary)
    return 0


def main(argv: list[str]) -> int:
    return run_function(pipeline, argv, "pipeline")


# A stage entry's links to earlier stages: its key -> the setting it fills with that stage's last checkpoint.
STAGE_LINKS = {"init_from": "init_from", "discriminator_from": "discriminator.init_from"}
STAGE_KEYS = ("name", "config", *STAGE_LINKS, "args")


def read_pipeline(path: Path) -> dict:
    """A pipeline YAML, its shape checked: experiment_dir, and stages each with a name and an existing config."""
    from omegaconf import OmegaConf

    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as err:  # omegaconf and yaml raise several kinds
        raise ConfigError(f"--config {path}: not a YAML mapping ({str(err).splitlines()[0][:200]})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("stages"), list) or not spec["stages"]:
        raise ConfigError(f"--config {path}: expected a mapping with experiment_dir and a list of stages "
                          "(experiments/pipeline.yaml is one)")
    if not isinstance(spec.get("experiment_dir"), str):
        raise ConfigError(f"--config {path}: experiment_dir must name the folder the stages' runs go in, got "
                          f"{spec.get('experiment_dir')!r}")
    for i, stage in enumerate(spec["stages"]):
        if not isinstance(stage, dict) or not isinstance(stage.get("name"), str) or "config" not in stage:
            raise ConfigError(f"--config {path}: stages[{i}] needs a name and a config, got {str(stage)[:80]}")
        unknown = sorted(set(stage) - set(STAGE_KEYS))
        if unknown:
            raise ConfigError(f"--config {path}: stages[{i}] ({stage['name']}) has unknown keys {unknown}; a stage "
                              f"takes {', '.join(STAGE_KEYS)}")
        if not Path(stage["config"]).is_file():
            raise ConfigError(f"--config {path}: stages[{i}] ({stage['name']}): config {stage['config']} does not "
                              "exist (paths are relative to the working directory)")
    return spec


def finished_record(done: Path) -> dict | None:
    """What a stage's DONE.json recorded; None when the stage has not finished. One that cannot be read (an older
    version wrote it in place, and was stopped halfway) is set aside, and the stage resumes from its checkpoint."""
    import json

    if not done.exists():
        return None
    try:
        record = json.loads(done.read_text())
        if isinstance(record, dict) and "seconds" in record:
            return record
    except (OSError, ValueError):
        pass
    aside = done.with_name("DONE.json.unreadable")
    os.replace(done, aside)
    print(f"[pipeline] {done} holds no finished stage's record: moved to {aside}; the stage runs (resumes) again")
    return None


def config_data_dir(config: Path) -> str | None:
    """`data.init_args.data_dir` of a stage's YAML (None where it names none)."""
    import yaml

    return ((yaml.safe_load(config.read_text()) or {}).get("data") or {}).get("init_args", {}).get("data_dir")


def stage_data_dir(config: str | Path, args: list[str]) -> str | None:
    """The data folder a stage trains on: its config's `data.init_args.data_dir`, or the last command-line override."""
    data_dir = config_data_dir(Path(config))
    for arg in args:
        if arg.startswith("--data.init_args.data_dir="):
            data_dir = arg.split("=", 1)[1]
    return data_dir


def check_same_data(run: Path, data_dir: str | None) -> None:
    """A finished stage is skipped only if it was trained on the data folder its config names now (after an update
    that moved the quick start to another world, an earlier run's checkpoints would be reported on the new one)."""

    saved = run / "config.yaml"  # what LightningCLI recorded when the stage ran
    if data_dir is None or not saved.exists():
        return
    trained = config_data_dir(saved)
    if trained is not None and Path(trained) != Path(data_dir):
        raise ConfigError(f"experiment_dir: {run} finished on data_dir={trained}, but its config now trains on "
                          f"{data_dir}; move {run.parent} away (or pass --experiment_dir) to train it again")


def check_report(spec: dict, path: Path) -> None:
    """Each `report.streams` entry names a stage of the pipeline, a positive step count, and how it is made:
    `forcing: student` (default; streamed on its own frames) or `teacher` (each frame from the true frames before
    it: the model without exposure bias, a diagnostic)."""
    names = {stage["name"] for stage in spec.get("stages", [])}
    for i, entry in enumerate(spec.get("report", {}).get("streams", []) or []):
        where = f"{path}: report.streams[{i}]"
        if entry.get("stage") not in names:
            raise ConfigError(f"{where}: stage {entry.get('stage')!r} is not one of the pipeline's stages "
                              f"{sorted(names)}")
        if not isinstance(entry.get("steps"), int) or entry["steps"] < 1:
            raise ConfigError(f"{where}: steps must be a positive integer (NFE per frame), got {entry.get('steps')!r}")
        if entry.get("forcing", "student") not in ("student", "teacher"):
            raise ConfigError(f"{where}: forcing must be 'student' (streamed on its own frames) or 'teacher' (each "
                              f"frame from the true frames before it), got {entry['forcing']!r}")
        unknown = set(entry) - {"stage", "steps", "forcing", "video"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)} (expected stage, steps, forcing, video)")


def long_stream_summary(exp: Path, spec: dict, finished: dict) -> str:
    """Stream the causal stages far past the clip length after K real context frames, next to the toy world's
    re-rendered truth and the floors (repeat the last context frame; perfect physics); write a report and a video."""
    import json

    from lightning_aapt.checkpoints import load_generator
    from lightning_aapt.data import dataset_codec
    from lightning_aapt.evaluation.toy import (
        floor_videos,
        score_toy_video,
        stream_toy_clips,
        teacher_forced_toy_clips,
        true_videos,
        validation_clips,
    )
    from lightning_aapt.evaluation.transfer import amplitude_transfer
    from lightning_aapt.metrics.extractors import make_extractor
    from lightning_aapt.provenance import versions, versions_line
    from lightning_aapt.video import contact_sheet, to_uint8, write_image, write_video
    from lightning_aapt.world.dataset import spec_from_manifest

    report = spec.get("report", {})
    stages = " · ".join(f"{n} {r['seconds']:.0f} s" for n, r in finished.items())
    if not report.get("streams"):  # a config without a report (e.g. a subset of stages run ahead): times only
        text = f"stage times: {stages}; no report.streams in the config, so nothing was streamed"
        write_atomic(exp / "summary.json", json.dumps({"stages": finished, "streams": {}}, indent=2).encode())
        write_atomic(exp / "summary.md", (text + "\n").encode())
        return text
    data = Path(report.get("data_dir", "data/toy"))
    toy = spec_from_manifest(data)
    codec = dataset_codec(data)
    clip_frames = int(report.get("clip_frames", 8))
    frames = int(report.get("frames", 10 * clip_frames))
    context = int(report.get("context_frames", 2))
    clips = int(report.get("clips", 8))
    scenes, actions = validation_clips(toy, 2 * clips, frames)  # the second half: the FD's real reference
    reference = true_videos(scenes[clips:], actions[clips:], toy.world)  # (B, T, 3, S, S)
    scenes, actions = scenes[:clips], actions[:clips]
    extractor = make_extractor("rand3d", None, flag="report")
    window = clip_frames
    results, rows, media, stream, transfers, objects = {}, [], [], None, {}, None
    features = {}  # the reference windows' features, extracted once for every row
    every = max(frames // 16, 1)  # contact sheets show 16 frames of a stream
    entries = report.get("streams", [])
    streamed = Counter(e["stage"] for e in entries)
    for entry in entries:
        stage, steps, forcing = entry["stage"], int(entry["steps"]), entry.get("forcing", "student")
        name = f"{stage}, {steps} NFE" if streamed[stage] > 1 else stage  # a stage streamed at several step counts
        generator = load_generator(exp / stage / "checkpoints" / "last.ckpt", flag=f"the {stage} report")
        model, shift = generator.model.eval(), generator.sampling.shift  # the time grid the stage samples on
        make = stream_toy_clips if forcing == "student" else teacher_forced_toy_clips
        stream = make(model, codec, toy.text_encoder(), toy.world, scenes, actions, steps=steps, shift=shift,
                      context_frames=context)
        # every row re-renders the same truth: one is kept, and its colour alpha computed once
        objects = stream.objects if objects is None else objects
        stream = replace(stream, objects=objects)
        curves = score_toy_video(stream.generated, stream, window, extractor, reference,
                                 reference_features=features)
        timed = forcing == "student"  # the teacher-forced pass is a diagnostic, not a way to generate: not timed
        name += "" if timed else ", teacher-forced"
        if (stage, steps) not in transfers:  # teacher-forced already: the same for a stage's forced and free rows
            transfers[stage, steps] = amplitude_transfer(model, codec, toy.text_encoder(), toy.world, scenes,
                                                         actions[:, :clip_frames], steps=steps, shift=shift,
                                                         context_frames=context)
        transfer = transfers[stage, steps]  # one step at each body contrast
        results[name] = {"steps": steps, "forcing": forcing, **curves.to_dict(), "transfer": transfer,
                         **({"ms_per_frame": 1e3 * stream.seconds_per_frame, "cache_bytes": list(stream.cache_bytes)}
                            if timed else {})}
        rows.append((name, str(steps), curves, f"{1e3 * stream.seconds_per_frame:.1f}" if timed else "–", transfer))
        if entry.get("video"):
            write_video(exp / entry["video"], to_uint8(stream.side_by_side()), fps=toy.fps, scale=4)
            pairs = [to_uint8(v) for c in range(min(4, clips)) for v in (stream.generated[c], stream.truth[c])]
            sheet = write_image((exp / entry["video"]).with_suffix(".png"), contact_sheet(pairs, every, 3))
            media.append(f"\nvideo: {exp / entry['video']} ({name}, generated left, truth right); contact sheet "
                         f"{sheet} ({len(pairs) // 2} scenes, one frame in {every}, generated above truth)")
    if stream is not None:
        for name, video in floor_videos(stream, scenes, actions, toy.world).items():
            curves = score_toy_video(video, stream, window, extractor, reference, reference_features=features)
            results[name] = curves.to_dict()
            rows.append((f"*{name.replace('_', ' ')}* (floor)", "–", curves, "–", None))
        curves = score_toy_video(stream.truth, stream, window, extractor, reference, reference_features=features)
        results["truth"] = curves.to_dict()
        rows.append(("*the truth itself*", "–", curves, "–", None))
    fd = next((k for k in (rows[0][2].curves if rows else {}) if k.startswith("fd")), "fd")
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
        ((name, steps, f"{cell(curves, 'agent_error_px', 2)} ({mean(curves.curves['agent_error_px']):.2f})",
          cell(curves, "agent_lost", 2), cell(curves, "agent_mass", 2), cell(curves, "action_following_px", 2),
          cell(curves, "sharpness", 2), cell(curves, "pixel_mse_truth", 4), cell(curves, fd, 3), ms)
         for name, steps, curves, ms, _ in rows))
    lines += object_table(rows, frames - context, window)
    starts = rows[0][2].starts if rows else []
    for key, title, digits in (("agent_error_px", "agent error px", 2), ("objects_kept", "objects kept", 2)):
        lines += ["", f"Drift curves: {title} per {window}-frame window (first frame of each window).", "",
                  *markdown_table(("model", *starts), ((name, *(f"{v:.{digits}f}" for v in curves.curves[key]))
                                                       for name, _, curves, _, _ in rows if key in curves.curves))]
    lines += media
    lines += ["", f"stage times: {stages}; ms/frame is the network time for all {clips} scenes together, "
              f"decode excluded", "", f"made with {versions_line()}"]
    write_atomic(exp / "summary.json", json.dumps({"stages": finished, "streams": results, "versions": versions()},
                                                  indent=2).encode())
    text = "\n".join(lines)
    write_atomic(exp / "summary.md", (text + "\n").encode())
    return text


def cell(curves, key: str, digits: int = 2) -> str:
    """A report cell: a curve's first window → last window, or "–" when the stream has no such curve."""
    values = curves.curves.get(key)
    return "–" if not values else f"{values[0]:.{digits}f} → {values[-1]:.{digits}f}"


def object_table(rows: list, generated: int, window: int) -> list[str]:
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
    for name, _, curves, _, transfer in rows:
        s = curves.summary
        if not s:
            continue
        alive = " / ".join(f"{s[k]:.2f}" for k in (f"alive_after_{n}" for n in (10, 20, generated)) if k in s)
        if transfer:
            at_one = {k: v["a_out"][v["amplitudes"].index(1.0)] for k, v in transfer.items()}
            dynamics = (f"{at_one['objects']:.3f} / {at_one['agent']:.3f}",
                        f"{transfer['objects']['error_vs_copy']:.2f} / {transfer['agent']['error_vs_copy']:.2f}")
        else:
            dynamics = ("–", "–")
        table.append((name, cell(curves, "objects_kept"), cell(curves, "object_mass"),
                      f"{s['median_lifetime']:.0f} / {s['median_lifetime_anywhere']:.0f}", alive,
                      cell(curves, "object_position_px"), cell(curves, "detail_kept"),
                      cell(curves, "spurious_detail", 3), *dynamics))
    return lines + markdown_table(
        ("model", "objects kept", "object mass", "median lifetime near / anywhere", "alive after 10 / 20 / end",
         "object position px", "detail kept", "spurious detail", "a_out(1) objects / agent",
         "error vs copy objects / agent"), table)
