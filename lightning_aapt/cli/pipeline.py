"""`python -m lightning_aapt pipeline`: the stages of a pipeline YAML in order, each from the previous one's
checkpoint (resumable), then long streams of the causal stages scored against the toy world's truth."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from lightning_aapt.cli.lightning import read_stage_config, run_lightning
from lightning_aapt.cli.signature import run_function
from lightning_aapt.errors import ConfigError
from lightning_aapt.files import write_atomic


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


def recorded_data_dir(config: Path) -> str | None:
    """`data.init_args.data_dir` as a finished stage's recorded `config.yaml` names it (None where it names none):
    read from the record, which an older version may have written with settings this one no longer parses."""
    import yaml

    return ((yaml.safe_load(config.read_text()) or {}).get("data") or {}).get("init_args", {}).get("data_dir")


def stage_data_dir(config: str | Path, args: list[str]) -> str | None:
    """The data folder a stage trains on: its config with the stage's model and data arguments, as `fit` parses
    them."""
    spec = read_stage_config(Path(config), [a for a in args if a.startswith(("--model.", "--data."))])
    return None if spec.get("data") is None else spec.data.init_args.data_dir


def check_same_data(run: Path, data_dir: str | None) -> None:
    """A finished stage is skipped only if it was trained on the data folder its config names now (after an update
    that moved the quick start to another world, an earlier run's checkpoints would be reported on the new one)."""

    saved = run / "config.yaml"  # what LightningCLI recorded when the stage ran
    if data_dir is None or not saved.exists():
        return
    trained = recorded_data_dir(saved)
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
    re-rendered truth, the floors and the truth itself (`evaluation.long_streams`); write a report and a video."""
    import json

    from lightning_aapt.checkpoints import load_generator
    from lightning_aapt.evaluation.long_streams import Row, ToyLongStreams, comparison_rows, long_stream_markdown
    from lightning_aapt.metrics.extractors import make_extractor
    from lightning_aapt.provenance import versions, versions_line
    from lightning_aapt.video import contact_sheet, to_uint8, write_image, write_video

    report = spec.get("report", {})
    stages = " · ".join(f"{n} {r['seconds']:.0f} s" for n, r in finished.items())
    if not report.get("streams"):  # a config without a report (e.g. a subset of stages run ahead): times only
        text = f"stage times: {stages}; no report.streams in the config, so nothing was streamed"
        write_atomic(exp / "summary.json", json.dumps({"stages": finished, "streams": {}}, indent=2).encode())
        write_atomic(exp / "summary.md", (text + "\n").encode())
        return text
    clip_frames = int(report.get("clip_frames", 8))
    frames = int(report.get("frames", 10 * clip_frames))
    context = int(report.get("context_frames", 2))
    clips = int(report.get("clips", 8))
    streams = ToyLongStreams(Path(report.get("data_dir", "data/toy")), clips, frames, context, clip_frames,
                             make_extractor("rand3d", None, flag="report"))
    results, rows, media, stream, transfers = {}, [], [], None, {}
    every = max(frames // 16, 1)  # contact sheets show 16 frames of a stream
    entries = report.get("streams", [])
    streamed = Counter(e["stage"] for e in entries)
    for entry in entries:
        stage, steps, forcing = entry["stage"], int(entry["steps"]), entry.get("forcing", "student")
        name = f"{stage}, {steps} NFE" if streamed[stage] > 1 else stage  # a stage streamed at several step counts
        generator = load_generator(exp / stage / "checkpoints" / "last.ckpt", flag=f"the {stage} report")
        model, shift = generator.model.eval(), generator.sampling.shift  # the time grid the stage samples on
        stream = streams.stream(model, steps, shift, forcing)
        curves = streams.score(stream.generated, stream)
        timed = forcing == "student"  # the teacher-forced pass is a diagnostic, not a way to generate: not timed
        name += "" if timed else ", teacher-forced"
        if (stage, steps) not in transfers:  # teacher-forced already: the same for a stage's forced and free rows
            transfers[stage, steps] = streams.transfer(model, steps, shift, clip_frames)
        transfer = transfers[stage, steps]  # one step at each body contrast
        results[name] = {"steps": steps, "forcing": forcing, **curves.to_dict(), "transfer": transfer,
                         **({"ms_per_frame": 1e3 * stream.seconds_per_frame, "cache_bytes": list(stream.cache_bytes)}
                            if timed else {})}
        rows.append(Row(name, str(steps), curves, f"{1e3 * stream.seconds_per_frame:.1f}" if timed else "–",
                        transfer))
        if entry.get("video"):
            write_video(exp / entry["video"], to_uint8(stream.side_by_side()), fps=streams.toy.fps, scale=4)
            pairs = [to_uint8(v) for c in range(min(4, clips)) for v in (stream.generated[c], stream.truth[c])]
            sheet = write_image((exp / entry["video"]).with_suffix(".png"), contact_sheet(pairs, every, 3))
            media.append(f"\nvideo: {exp / entry['video']} ({name}, generated left, truth right); contact sheet "
                         f"{sheet} ({len(pairs) // 2} scenes, one frame in {every}, generated above truth)")
    if stream is not None:
        compared = streams.compared_with(stream)
        results.update((name, curves.to_dict()) for name, curves in compared.items())
        rows += comparison_rows(compared)
    lines = long_stream_markdown(rows, frames, context, clips, clip_frames, clip_frames)
    lines += media
    lines += ["", f"stage times: {stages}; ms/frame is the network time for all {clips} scenes together, "
              f"decode excluded", "", f"made with {versions_line()}"]
    write_atomic(exp / "summary.json", json.dumps({"stages": finished, "streams": results, "versions": versions()},
                                                  indent=2).encode())
    text = "\n".join(lines)
    write_atomic(exp / "summary.md", (text + "\n").encode())
    return text
