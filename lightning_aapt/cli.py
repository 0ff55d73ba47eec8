"""`python -m lightning_aapt COMMAND`: the composition root, where core, data and callbacks meet.

Commands:
    fit | validate | test | predict   LightningCLI (parser_mode="omegaconf"): --config X.yaml, --print_config
    pipeline --config PIPELINE.yaml   run the stages in order, each from the previous one (resumable)
    eval --ckpt CKPT --config X.yaml  FD/kernel distance and long-horizon drift of a checkpoint -> report.md/json
    plan --config X.yaml              parameters, FLOPs per step / frame, memory per GPU, before launching
    sweep --config X --grid K=[a,b]   trials of overrides: --local here, or an sbatch job array (--submit)
    sweep summary DIR                 every trial's final metrics -> DIR/summary.md, summary.csv
    sample --ckpt CKPT --frames N --out FILE.gif|mp4   stream a stage's generator next to the toy truth
    prepare toy-world --out DIR       render the toy world into WebDataset shards + manifest.json
    stream                            time the streaming generator, frame by frame
    bench SUITE [--out results.json]  streaming | efficiency | training | data | projection | all, side by side
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from lightning_aapt.backbone import PRESETS, BackboneConfig, CausalVideoDiT
from lightning_aapt.files import write_atomic
from lightning_aapt.inference import StreamingGenerator

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def lightning_cli(argv: list[str] | None) -> int:
    """LightningCLI on `argv` (None: the command line itself)."""
    run_lightning(argv)
    return 0


def aapt_cli(**kwargs):
    """LightningCLI over every stage and data module, with the data's dimensions linked into the model."""
    from lightning.pytorch.cli import LightningCLI

    from datamodules.web_video import WebVideoDataModule
    from lightning_aapt.stages import StageModule

    class AAPTCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            # The data decides latent channels, text width and control width; the model gets them from it.
            parser.link_arguments("data.model_dims", "model.init_args.model_dims", apply_on="instantiate")

    return AAPTCLI(StageModule, WebVideoDataModule, subclass_mode_model=True, subclass_mode_data=True,
                   parser_kwargs={"parser_mode": "omegaconf"}, save_config_kwargs={"overwrite": True}, **kwargs)


def check_ckpt_path(argv: list[str]) -> None:
    """Fail early, naming the file, when `--ckpt_path` is missing or not a complete checkpoint (a zip archive;
    a folder is a sharded checkpoint). 'last' / 'best' / 'hpc' are Lightning's names and pass."""
    import zipfile

    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--ckpt_path=") else (
            argv[i + 1] if arg == "--ckpt_path" and i + 1 < len(argv) else None)
        if value in (None, "null", "last", "best", "hpc", "registry"):
            continue
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(f"--ckpt_path {path}: no such checkpoint")
        if path.is_file() and not zipfile.is_zipfile(path):
            raise ValueError(f"--ckpt_path {path}: unreadable checkpoint (truncated, or not a torch checkpoint)")


def run_lightning(argv: list[str] | None):
    """Run LightningCLI on `argv` and return it (its trainer holds the final metrics)."""
    check_ckpt_path(sys.argv[1:] if argv is None else argv)
    # LightningCLI reads sys.argv; run it on `argv` as if typed, so it never sees two argument lists.
    saved = sys.argv
    if argv is not None:
        sys.argv = [saved[0], *argv]
    try:
        return aapt_cli()
    finally:
        sys.argv = saved


def build_lightning(args: list[str]):
    """Instantiate the model, data module and trainer of a config without running anything (`args` without
    a subcommand, e.g. ["--config", X])."""
    return aapt_cli(args=args, run=False)


def plan_command(argv: list[str]) -> int:
    """Parameters, FLOPs and memory per GPU of a config (or of a preset and flags), before spending GPU hours."""
    from omegaconf import OmegaConf

    from lightning_aapt.plan import Workload, report

    parser = argparse.ArgumentParser(prog="python -m lightning_aapt plan", description=plan_command.__doc__)
    parser.add_argument("--config", help="an experiment YAML: backbone, GPUs, strategy, batch and clip length")
    parser.add_argument("--preset", default="aapt-8b-like", choices=sorted(PRESETS),
                        help="backbone fields the config does not set (latent/text widths come from the data)")
    parser.add_argument("--gpus", type=int, help="data-parallel GPUs (default: the config's devices x num_nodes)")
    parser.add_argument("--batch", type=int, help="clips per GPU (default: the config's data.batch_size)")
    parser.add_argument("--frames", type=int, help="latent frames per clip (default: the config's num_frames)")
    parser.add_argument("--latent-size", type=int, nargs=2, default=(52, 92), metavar=("H", "W"),
                        help="latent frame size (default 52 x 92: 416 x 736 video through an 8x VAE)")
    parser.add_argument("--text-tokens", type=int, default=512)
    parser.add_argument("--sharding", choices=["fsdp", "ddp"])
    parser.add_argument("--precision", choices=["bf16", "fp32"])
    parser.add_argument("--no-activation-checkpointing", action="store_true")
    parser.add_argument("--stage", type=int, choices=[1, 3])
    parser.add_argument("--gpu-memory-gib", type=float, default=80.0)
    args = parser.parse_args(argv)
    spec = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True) if args.config else {}
    trainer, model = spec.get("trainer", {}), spec.get("model", {})
    init, data = model.get("init_args", {}), spec.get("data", {}).get("init_args", {})
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in (init.get("backbone") or {}).items()}
    unknown = set(fields) - set(BackboneConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{args.config}: model.init_args.backbone has unknown keys {sorted(unknown)}")
    cfg = BackboneConfig.preset(args.preset, **fields)
    strategy = trainer.get("strategy", "ddp")
    strategy_name = strategy.get("class_path", "") if isinstance(strategy, dict) else str(strategy)
    parallel = init.get("parallel") or {}
    work = Workload(
        latent_size=tuple(args.latent_size), text_tokens=args.text_tokens,
        frames=args.frames or data.get("num_frames", 30), batch_per_gpu=args.batch or data.get("batch_size", 1),
        gpus=args.gpus or int(trainer.get("devices", 8)) * int(trainer.get("num_nodes", 1)),
        sharding=args.sharding or ("fsdp" if "ModelParallel" in strategy_name else "ddp" if args.config else "fsdp"),
        precision=args.precision or parallel.get("precision", "bf16"),
        activation_checkpointing=not args.no_activation_checkpointing and parallel.get("activation_checkpointing",
                                                                                      True),
        stage=args.stage or (3 if "Adversarial" in model.get("class_path", "") else 1),
        rollout_frames=init.get("num_rollout_frames"))
    print(report(args.config or args.preset, cfg, work, args.gpu_memory_gib))
    return 0


def bench(argv: list[str]) -> int:
    from lightning_aapt.bench import main as run

    return run(argv)


def sweep(argv: list[str]) -> int:
    from lightning_aapt.sweep import run

    return run(argv)


def evaluate(argv: list[str]) -> int:
    from callbacks.report import evaluate as run

    return run(argv)


def pipeline(argv: list[str]) -> int:
    """Run the stages of a pipeline YAML in order; finished stages are skipped, interrupted ones resumed."""
    import json

    from omegaconf import OmegaConf

    parser = argparse.ArgumentParser(prog="python -m lightning_aapt pipeline",
                                     description="Run AAPT's stages in order, each starting from the previous.")
    parser.add_argument("--config", type=Path, required=True, help="pipeline YAML (experiments/pipeline.yaml)")
    parser.add_argument("--experiment-dir", type=Path, help="override the YAML's experiment_dir")
    parser.add_argument("overrides", nargs="*", help="arguments added to every stage, e.g. --trainer.max_steps=5")
    args = parser.parse_args(argv)
    spec = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)
    check_report(spec, args.config)  # before hours of training, not after
    exp = Path(args.experiment_dir or spec["experiment_dir"])
    exp.mkdir(parents=True, exist_ok=True)
    finished = {}
    for stage in spec["stages"]:
        name = stage["name"]
        done = exp / name / "DONE.json"
        if done.exists():
            finished[name] = json.loads(done.read_text())
            print(f"[pipeline] {name}: finished earlier ({done}), skipped")
            continue
        run = ["fit", "--config", str(stage["config"]), f"--trainer.logger.init_args.save_dir={exp}",
               f"--trainer.logger.init_args.name={name}", f"--trainer.default_root_dir={exp / name}"]
        for key in ("init_from", "disc_init_from"):
            if stage.get(key):
                run.append(f"--model.init_args.{key}={exp / stage[key] / 'checkpoints' / 'last.ckpt'}")
        last = exp / name / "checkpoints" / "last.ckpt"
        if last.exists():
            run += ["--ckpt_path", str(last)]
            print(f"[pipeline] {name}: resuming from {last}")
        run += [*stage.get("args", []), *spec.get("args", []), *args.overrides]
        print(f"[pipeline] {name}: python -m lightning_aapt {' '.join(run)}")
        start = time.perf_counter()
        cli = run_lightning(run)
        metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
        record = {"seconds": round(time.perf_counter() - start, 1), "global_step": cli.trainer.global_step,
                  "metrics": metrics, "checkpoint": str(last)}
        done.write_text(json.dumps(record, indent=2))
        finished[name] = record
    summary = long_stream_summary(exp, spec, finished)
    print(summary)
    return 0


def check_report(spec: dict, path: Path) -> None:
    """Each `report.streams` entry names a stage of the pipeline, a positive step count, and how it is made:
    `forcing: student` (default; streamed on its own frames) or `teacher` (each frame from the true frames before
    it: the model without exposure bias, a diagnostic)."""
    names = {stage["name"] for stage in spec.get("stages", [])}
    for i, entry in enumerate(spec.get("report", {}).get("streams", []) or []):
        where = f"{path}: report.streams[{i}]"
        if entry.get("stage") not in names:
            raise ValueError(f"{where}: stage {entry.get('stage')!r} is not one of the pipeline's stages "
                             f"{sorted(names)}")
        if not isinstance(entry.get("steps"), int) or entry["steps"] < 1:
            raise ValueError(f"{where}: steps must be a positive integer (NFE per frame), got {entry.get('steps')!r}")
        if entry.get("forcing", "student") not in ("student", "teacher"):
            raise ValueError(f"{where}: forcing must be 'student' (streamed on its own frames) or 'teacher' (each "
                             f"frame from the true frames before it), got {entry['forcing']!r}")
        unknown = set(entry) - {"stage", "steps", "forcing", "video"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)} (expected stage, steps, forcing, video)")


def long_stream_summary(exp: Path, spec: dict, finished: dict) -> str:
    """Stream the causal stages far past the clip length after K real context frames, next to the toy world's
    re-rendered truth and the floors (repeat the last context frame; perfect physics); write a report and a video."""
    import json

    from datamodules.shards import read_manifest
    from datamodules.toy_world import clip_seeds, spec_from_manifest
    from lightning_aapt.codecs import codec_from_manifest
    from lightning_aapt.inference.toy_eval import (
        floor_videos,
        policy_actions,
        score_toy_video,
        stream_toy_clips,
        teacher_forced_toy_clips,
        true_videos,
    )
    from lightning_aapt.inference.video import contact_sheet, to_uint8, write_image, write_video
    from lightning_aapt.metrics.extractors import make_extractor
    from lightning_aapt.stages.checkpoints import load_backbone

    report = spec.get("report", {})
    stages = " · ".join(f"{n} {r['seconds']:.0f} s" for n, r in finished.items())
    if not report.get("streams"):  # a config without a report (e.g. a subset of stages run ahead): times only
        text = f"stage times: {stages}; no report.streams in the config, so nothing was streamed"
        write_atomic(exp / "summary.json", json.dumps({"stages": finished, "streams": {}}, indent=2).encode())
        write_atomic(exp / "summary.md", (text + "\n").encode())
        return text
    data = Path(report.get("data_dir", "data/toy"))
    toy = spec_from_manifest(data)
    codec = codec_from_manifest(read_manifest(data))
    clip_frames = int(report.get("clip_frames", 8))
    frames = int(report.get("frames", 10 * clip_frames))
    context = int(report.get("context_frames", 2))
    clips = int(report.get("clips", 8))
    seeds = [clip_seeds(toy, "val", i) for i in range(2 * clips)]  # the second half: the FD's real reference
    actions = policy_actions([a for _, a in seeds], frames, toy.persistence)
    reference = true_videos([s for s, _ in seeds[clips:]], actions[clips:], toy.world)  # (B, T, 3, S, S)
    scenes, actions = [s for s, _ in seeds[:clips]], actions[:clips]
    extractor = make_extractor("rand3d", None, flag="report")
    window = clip_frames
    results, rows, media, stream = {}, [], [], None
    every = max(frames // 16, 1)  # contact sheets show 16 frames of a stream
    entries = report.get("streams", [])
    streamed = Counter(e["stage"] for e in entries)
    for entry in entries:
        stage, steps, forcing = entry["stage"], int(entry["steps"]), entry.get("forcing", "student")
        name = f"{stage}, {steps} NFE" if streamed[stage] > 1 else stage  # a stage streamed at several step counts
        model = load_backbone(exp / stage / "checkpoints" / "last.ckpt").eval()
        make = stream_toy_clips if forcing == "student" else teacher_forced_toy_clips
        stream = make(model, codec, toy.text_encoder(), toy.world, scenes, actions, steps=steps, context_frames=context)
        curves = score_toy_video(stream.generated, stream, window, extractor, reference)
        timed = forcing == "student"  # the teacher-forced pass is a diagnostic, not a way to generate: not timed
        name += "" if timed else ", teacher-forced"
        results[name] = {"steps": steps, "forcing": forcing, **curves.to_dict(),
                         **({"ms_per_frame": 1e3 * stream.seconds_per_frame, "cache_bytes": list(stream.cache_bytes)}
                            if timed else {})}
        rows.append((name, str(steps), curves, f"{1e3 * stream.seconds_per_frame:.1f}" if timed else "–"))
        if entry.get("video"):
            write_video(exp / entry["video"], to_uint8(stream.side_by_side()), fps=8, scale=4)
            pairs = [to_uint8(v) for c in range(min(4, clips)) for v in (stream.generated[c], stream.truth[c])]
            sheet = write_image((exp / entry["video"]).with_suffix(".png"), contact_sheet(pairs, every, 3))
            media.append(f"\nvideo: {exp / entry['video']} ({name}, generated left, truth right); contact sheet "
                         f"{sheet} ({len(pairs) // 2} scenes, one frame in {every}, generated above truth)")
    if stream is not None:
        for name, video in floor_videos(stream, scenes, actions, toy.world).items():
            curves = score_toy_video(video, stream, window, extractor, reference)
            results[name] = curves.to_dict()
            rows.append((f"*{name.replace('_', ' ')}* (floor)", "–", curves, "–"))
        curves = score_toy_video(stream.truth, stream, window, extractor, reference)
        results["truth"] = curves.to_dict()
        rows.append(("*the truth itself*", "–", curves, "–"))
    fd = next((k for k in (rows[0][2].curves if rows else {}) if k.startswith("fd")), "fd")
    lines = [f"## Long streams: {frames} frames ({frames // clip_frames}x the {clip_frames}-frame training clips) "
             f"after {context} real context frames, {clips} validation scenes, truth re-rendered by the toy world",
             "", f"Each cell: first window → last window ({window} frames each); agent error also over the whole "
             f"stream. Agent lost: the share of scenes whose agent is off by a quarter of the frame somewhere in the "
             f"window. {fd}: {clips} streams against {clips} other scenes' truth.", "",
             f"| model | NFE/frame | agent error px (whole stream) | agent lost | action following px | sharpness "
             f"| pixel MSE | {fd} | ms/frame |", "|---|---|---|---|---|---|---|---|---|"]

    def cell(curves, key: str, digits: int) -> str:
        values = curves.curves.get(key)
        return "–" if not values else f"{values[0]:.{digits}f} → {values[-1]:.{digits}f}"

    for name, steps, curves, ms in rows:
        agent = curves.curves["agent_error_px"]
        lines.append(f"| {name} | {steps} | {cell(curves, 'agent_error_px', 2)} ({sum(agent) / len(agent):.2f}) | "
                     f"{cell(curves, 'agent_lost', 2)} | {cell(curves, 'action_following_px', 2)} | "
                     f"{cell(curves, 'sharpness', 2)} | "
                     f"{cell(curves, 'pixel_mse_truth', 4)} | {cell(curves, fd, 3)} | {ms} |")
    starts = rows[0][2].starts if rows else []
    lines += ["", f"Drift curves: agent error px per {window}-frame window (first frame of each window).", "",
              "| model | " + " | ".join(str(f) for f in starts) + " |", "|---|" + "---|" * len(starts)]
    lines += [f"| {name} | " + " | ".join(f"{v:.2f}" for v in curves.curves["agent_error_px"]) + " |"
              for name, _, curves, _ in rows]
    lines += media
    lines += ["", f"stage times: {stages}; ms/frame is the network time for all {clips} scenes together, "
              "decode excluded"]
    write_atomic(exp / "summary.json", json.dumps({"stages": finished, "streams": results}, indent=2).encode())
    text = "\n".join(lines)
    write_atomic(exp / "summary.md", (text + "\n").encode())
    return text


def sample(argv: list[str]) -> int:
    """Stream a checkpoint's generator from a toy validation scene and write it next to the truth."""
    import numpy as np

    from datamodules.shards import read_manifest
    from datamodules.toy_world import clip_seeds, spec_from_manifest
    from lightning_aapt.codecs import codec_from_manifest
    from lightning_aapt.inference.toy_eval import policy_actions, stream_toy_clips
    from lightning_aapt.inference.video import to_uint8, write_video
    from lightning_aapt.stages.checkpoints import load_backbone

    parser = argparse.ArgumentParser(prog="python -m lightning_aapt sample",
                                     description="Stream a stage's generator (EMA weights) to a video file.")
    parser.add_argument("--ckpt", type=Path, required=True, help="stage checkpoint (stage 1, 2 or 3)")
    parser.add_argument("--frames", type=int, default=80, help="frames of the video, the real first frame included")
    parser.add_argument("--out", type=Path, required=True, help="output .gif or .mp4")
    parser.add_argument("--steps", type=int, default=1, help="network evaluations per frame (1 for stage 3)")
    parser.add_argument("--data", type=Path, default=Path("data/toy"), help="toy-world dataset (its manifest)")
    parser.add_argument("--clip", type=int, default=0, help="validation scene whose first frame and caption start")
    parser.add_argument("--actions", type=Path, help=".npy (T, 2) actions; default the scripted policy")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--context", type=int, default=2, help="real frames the stream starts from (fed through "
                        "the cache)")
    parser.add_argument("--scale", type=int, default=4, help="pixel upscaling of the written video")
    args = parser.parse_args(argv)
    model = load_backbone(args.ckpt).eval()
    if model.cfg.bidirectional:
        raise SystemExit(f"{args.ckpt} holds a bidirectional (stage-0) model: sample streams causal stages 1-3")
    toy = spec_from_manifest(args.data)
    scene, action_seed = clip_seeds(toy, "val", args.clip)
    if args.actions:
        actions = torch.from_numpy(np.load(args.actions).astype(np.float32))[None]
        if actions.shape[1:] != (args.frames, toy.world.action_dim):
            raise SystemExit(f"--actions {args.actions}: expected ({args.frames}, {toy.world.action_dim}), "
                             f"got {tuple(actions.shape[1:])}")
    else:
        actions = policy_actions([action_seed], args.frames, toy.persistence)
    stream = stream_toy_clips(model, codec_from_manifest(read_manifest(args.data)), toy.text_encoder(), toy.world,
                              [scene], actions, steps=args.steps, seed=args.seed, progress=True,
                              context_frames=args.context)
    write_video(args.out, to_uint8(stream.side_by_side()), fps=8, scale=args.scale)
    error = stream.frame_error()[args.context :]
    print(f"wrote {args.out}: {args.frames} frames (generated left, truth right, {args.context} real context "
          f"frames); pixel MSE vs truth {error[:8].mean():.4f} (first 8 generated) -> {error[-8:].mean():.4f} "
          "(last 8); "
          f"{1e3 * stream.seconds_per_frame:.1f} ms/frame ({args.steps} NFE, decode excluded)")
    return 0


def prepare(argv: list[str]) -> int:
    from datamodules.toy_world import ToyWorldSpec, prepare_toy_world
    from lightning_aapt.world import WorldConfig

    parser = argparse.ArgumentParser(prog="python -m lightning_aapt prepare",
                                     description="Write WebDataset shards of video latents.")
    sub = parser.add_subparsers(dest="source", required=True)
    toy = sub.add_parser("toy-world", help="render the built-in toy world (deterministic from --seed)")
    spec = ToyWorldSpec()
    toy.add_argument("--out", type=Path, required=True, help="output directory")
    toy.add_argument("--train-clips", type=int, default=spec.train_clips)
    toy.add_argument("--val-clips", type=int, default=spec.val_clips)
    toy.add_argument("--clip-frames", type=int, default=spec.clip_frames)
    toy.add_argument("--size", type=int, default=WorldConfig().size, help="frame edge in pixels")
    toy.add_argument("--samples-per-shard", type=int, default=spec.samples_per_shard)
    toy.add_argument("--seed", type=int, default=spec.seed)
    toy.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    args = parser.parse_args(argv)
    spec = ToyWorldSpec(train_clips=args.train_clips, val_clips=args.val_clips, clip_frames=args.clip_frames,
                        world=WorldConfig(size=args.size), samples_per_shard=args.samples_per_shard, seed=args.seed)
    manifest = prepare_toy_world(args.out, spec, overwrite=args.overwrite)
    print(f"wrote {args.train_clips} train and {args.val_clips} val clips to {args.out} "
          f"(latents {manifest['shapes']['latents']}, {manifest['made_by']['seconds']} s)")
    return 0


def stream(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_aapt stream",
                                     description="Stream frames through the KV cache and time each one.")
    parser.add_argument("--preset", default="toy", choices=sorted(PRESETS), help="backbone preset")
    parser.add_argument("--frames", type=int, default=240, help="latent frames to generate")
    parser.add_argument("--steps", type=int, default=1, help="network evaluations per frame (1 = AAPT)")
    parser.add_argument("--batch", type=int, default=1, help="streams generated together")
    parser.add_argument("--latent-size", type=int, nargs=2, default=(8, 8), metavar=("H", "W"))
    parser.add_argument("--warmup", type=int, default=8, help="frames excluded from timing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    cfg = BackboneConfig.preset(args.preset)
    model = CausalVideoDiT(cfg).eval()
    gen = StreamingGenerator(model, latent_size=tuple(args.latent_size), steps=args.steps, seed=args.seed)
    text = torch.randn(args.batch, 16, cfg.text_dim)
    controls = torch.randn(args.batch, args.frames, cfg.control_dim) if cfg.control_dim else None
    gen.reset(text)
    times = []
    for f in range(args.frames):
        start = time.perf_counter()
        frame = gen.step(None if controls is None else controls[:, f])
        times.append(time.perf_counter() - start)
        if not torch.isfinite(frame).all():
            print(f"non-finite output at frame {f}", file=sys.stderr)
            return 1
    timed = times[args.warmup:] or times
    median_ms = 1e3 * statistics.median(timed)
    params = sum(p.numel() for p in model.parameters())
    print(f"preset {args.preset} ({params / 1e6:.1f}M parameters, untrained), latents {args.batch}x"
          f"{cfg.latent_channels}x{args.latent_size[0]}x{args.latent_size[1]}, window {cfg.window_frames}, "
          f"sink {cfg.sink_frames}, {args.steps} NFE/frame, {torch.get_num_threads()} threads")
    print(f"{args.frames} frames: median {median_ms:.2f} ms/frame ({1e3 / median_ms:.1f} latent frames/s, "
          f"decode not included, first {args.warmup} frames excluded); "
          f"cache {gen.cache.memory_bytes() / 2**20:.2f} MiB")
    return 0


COMMANDS = {"bench": bench, "eval": evaluate, "pipeline": pipeline, "plan": plan_command, "prepare": prepare,
            "sample": sample, "stream": stream, "sweep": sweep}


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in LIGHTNING_COMMANDS:
        return lightning_cli(None if from_command_line else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    print(__doc__)
    return 0 if not argv or argv[0] in ("-h", "--help") else 2
