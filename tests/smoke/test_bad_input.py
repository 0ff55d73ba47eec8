"""Every bad input a careful new user tried, one row each: the command, and the words its one-line error must hold.

A row runs `python -m lightning_aapt ...` as the command line does (`cli.run`: a refusal is printed as one
`error: ...` line, exit status 2, no traceback); rows that could hang run in a fresh process under a time limit.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import socket
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lightning_aapt.backbone import CausalVideoDiT
from lightning_aapt.checkpoints import recorded_backbone, save_backbone
from lightning_aapt.cli import run
from tests.conftest import TINY_SPEC
from tests.helpers_cli import fit, tiny_config
from tests.helpers_parallel import run_cli

pytestmark = pytest.mark.smoke


@dataclass(frozen=True)
class Row:
    case: str
    argv: str  # the command, with {names} of the files the `files` fixture makes
    words: tuple[str, ...]  # what the error line (or, rc 0, the output) must contain
    fresh_process: bool = False  # may hang if the check is missing: run apart, with a time limit
    rc: int = 2


ROWS = [
    # checkpoints, through every reader: eval, sample, merge, play, init_from, discriminator.init_from, fit --ckpt_path
    Row("eval: a config without a data section", "eval --ckpt {stage1_ckpt} --config {no_data}",
        ("--config", "no data section")),
    Row("eval: a checkpoint on a world of another resolution", "eval --ckpt {other_size_ckpt} --config {stage1}",
        ("--ckpt=", "was trained on 9x9 latents", "a world of another resolution")),
    Row("eval: a checkpoint of another text width", "eval --ckpt {text32_ckpt} --config {stage1}",
        ("--ckpt=", "text_dim: checkpoint 32, data 64")),
    Row("eval: a truncated file", "eval --ckpt {truncated} --config {stage1}", ("--ckpt=", "truncated", "bytes")),
    Row("eval: a directory", "eval --ckpt {folder} --config {stage1}",
        ("--ckpt=", "folder without meta.pt", "not a sharded checkpoint")),
    Row("eval: a text file", "eval --ckpt {text} --config {stage1}",
        ("--ckpt=", "not a torch checkpoint", "'hello, I am not a checkpoint'")),
    Row("eval: an empty file", "eval --ckpt {empty} --config {stage1}", ("--ckpt=", "empty file")),
    Row("eval: a missing file", "eval --ckpt {missing} --config {stage1}", ("--ckpt=", "no such file")),
    Row("eval: pickled Python objects", "eval --ckpt {pickled} --config {stage1}",
        ("--ckpt=", "Python objects", "weights_only")),
    Row("eval: a zip that is not a torch file", "eval --ckpt {plain_zip} --config {stage1}",
        ("--ckpt=", "zip archive torch cannot read")),
    Row("eval: a torch file that is not ours", "eval --ckpt {foreign} --config {stage1}",
        ("--ckpt=", "not a lightning_aapt checkpoint", "['weights']")),
    Row("eval: a drift horizon with no full window", "eval --ckpt {stage1_ckpt} --config {stage1} --horizon 1",
        ("--horizon 1", "no full 6-frame window", "--horizon 2")),
    Row("sample: a directory", "sample --ckpt {folder} --frames 4 --data {data} --out {out}/x.gif",
        ("--ckpt=", "folder without meta.pt")),
    Row("merge: a truncated file", "merge --ckpt {truncated} --out {out}/m.ckpt", ("--ckpt=", "truncated")),
    Row("play: a text file", "play --ckpt {text} --data {data}", ("--ckpt=", "not a torch checkpoint")),
    Row("init_from: a missing file", "fit --config {stage1} --model.init_args.init_from={missing}",
        ("init_from=", "no such file")),
    Row("init_from: a truncated file", "fit --config {stage1} --model.init_args.init_from={truncated}",
        ("init_from=", "truncated")),
    Row("discriminator.init_from: a text file",
        "fit --config {stage3} --model.init_args.discriminator.init_from={text}",
        ("discriminator.init_from=", "not a torch checkpoint")),
    Row("fit --ckpt_path: truncated", "fit --config {stage1} --ckpt_path {truncated}",
        ("--ckpt_path=", "truncated")),
    Row("fit --ckpt_path: missing", "fit --config {stage1} --ckpt_path {missing}", ("--ckpt_path=", "no such file")),
    *[Row(f"a checkpoint with {case}", f"sample --ckpt {{{key}}} --data {{data}} --out {{out}}/c.gif",
          ("--ckpt=", words))
      for key, case, words in (("newer_ckpt", "a backbone field this version does not know",
                                "records fields this version does not know (['quantum'])"),
                               ("list_config_ckpt", "a list for its backbone_config",
                                "backbone_config must record the backbone's fields, got list"),
                               ("nan_ckpt", "a NaN weight", "weights hold NaN or infinite values"),
                               ("lora_key_ckpt", "an unknown LoRA setting", "its `lora` settings cannot be read"))],
    Row("sample on a world of another resolution", "sample --ckpt {other_size_ckpt} --data {data} --out {out}/r.gif",
        ("--ckpt=", "was trained on 9x9 latents", "a world of another resolution")),
    Row("play on a world of another resolution", "play --ckpt {other_size_ckpt} --data {data}",
        ("--ckpt=", "was trained on 9x9 latents")),
    Row("init_from a checkpoint of a newer version", "fit --config {stage1} --model.init_args.init_from={newer_ckpt}",
        ("init_from=", "does not know (['quantum'])")),
    Row("resume from a diverged checkpoint", "fit --config {stage1} --ckpt_path {nan_ckpt}",
        ("--ckpt_path=", "NaN")),
    Row("a checkpoint whose dim does not split into its heads", "sample --ckpt {dim47_ckpt} --data {data} "
        "--out {out}/d.gif", ("--ckpt=", "dim=47")),
    Row("resume from a checkpoint with no optimizer_states key", "fit --config {stage1} --ckpt_path {no_optimizer_key}",
        ("--ckpt_path=", "holds no optimizer state")),
    Row("resume from a checkpoint with a weight the model lacks", "fit --config {stage1} --ckpt_path {extra_weight}",
        ("--ckpt_path=", "extra_weight")),
    Row("resume from what merge writes", "fit --config {stage1} --ckpt_path {merged}",
        ("--ckpt_path=", "init_from")),
    Row("sample with a checkpoint whose sampler settings cannot be read", "sample --ckpt {bad_sampling_ckpt} "
        "--data {data} --out {out}/b.gif", ("--ckpt=", "sampler settings cannot be read", "cfg_scale")),
    Row("merge onto a folder", "merge --ckpt {stage1_ckpt} --out {folder}", ("--out=", "folder")),
    Row("sample with a checkpoint of another text width", "sample --ckpt {text32_ckpt} --data {data} "
        "--out {out}/t.gif", ("--ckpt=", "text_dim: checkpoint 32, data 64")),
    Row("play with a checkpoint of another text width", "play --ckpt {text32_ckpt} --data {data}",
        ("--ckpt=", "text_dim: checkpoint 32, data 64")),
    Row("eval --drift_clips 0", "eval --ckpt {stage1_ckpt} --config {stage1} --drift_clips 0",
        ("--drift_clips 0: must be >= 1",)),
    Row("plan: a missing config", "plan --config {missing}", ("--config", "no such experiment YAML")),
    Row("plan --latent_size [0,0]", "plan --latent_size [0,0]", ("--latent_size",)),
    Row("pipeline: stages given as a mapping", "pipeline --config {pipeline_stage_map}", ("stages",)),
    Row("pipeline: no experiment_dir", "pipeline --config {pipeline_no_dir}", ("experiment_dir",)),
    Row("sweep: a grid without brackets", "sweep --config {stage1} --grid model.init_args.optimizer.lr=1e-4 "
        "--out {out}/sweep", ("--grid", "KEY=[v1,v2,...]")),
    Row("sweep: an unclosed bracket", "sweep --config {stage1} --grid model.init_args.optimizer.lr=[1e-4 "
        "--out {out}/sweep", ("--grid",)),
    Row("sweep summary of a folder without trials", "sweep summary --dir {folder}", ("trials.json",)),
    Row("play: a host that does not resolve", "play --ckpt {stage1_ckpt} --data {data} --host nosuchhost.invalid",
        ("--host nosuchhost.invalid: not a name or address this machine can resolve",)),
    Row("play: a port another program has", "play --ckpt {stage1_ckpt} --data {data} --port {taken_port}",
        ("cannot listen on 127.0.0.1:", "another program has it")),
    Row("init_from a diverged checkpoint", "fit --config {stage1} --model.init_args.init_from={nan_ckpt}",
        ("init_from=", "weights hold NaN or infinite values", "use an earlier checkpoint")),
    # outputs: never an input, never an existing file unless told to, checked before the work
    Row("merge onto its own checkpoint", "merge --ckpt {stage1_ckpt} --out {stage1_ckpt} --overwrite true",
        ("--out=", "is also --ckpt, which it reads")),
    Row("merge onto an existing file", "merge --ckpt {stage1_ckpt} --out {text}",
        ("--out=", "already exists", "--overwrite true")),
    Row("sample to a .txt", "sample --ckpt {stage1_ckpt} --frames 4 --out {out}/x.txt",
        ("--out=", "expected a .gif or .mp4 file")),
    Row("sample onto an existing file", "sample --ckpt {stage1_ckpt} --frames 4 --out {old_gif}",
        ("--out=", "already exists", "--overwrite true")),
    Row("eval --num_clips 0", "eval --ckpt {stage1_ckpt} --config {stage1} --num_clips 0",
        ("--num_clips 0: must be >= 1",)),
    Row("eval --steps 0", "eval --ckpt {stage1_ckpt} --config {stage1} --steps 0",
        ("--steps 0: must be >= 1", "leave it out")),
    Row("eval --out a file", "eval --ckpt {stage1_ckpt} --config {stage1} --out {text}", ("--out=", "is a file")),
    Row("play --replay written over its own log", "play --ckpt {stage1_ckpt} --data {data} --replay {text} "
        "--out {text}", ("--out=", "is also --replay, which it reads")),
    # sample's settings, before any work
    *[Row(f"sample {flags}", f"sample --ckpt {{stage1_ckpt}} --data {{data}} {flags} --out {{out}}/s.gif", words)
      for flags, words in (("--frames -5", ("--frames -5: must be >= 3",)),
                           ("--frames 2", ("--frames 2: must be >= 3", "then at least one generated")),
                           ("--steps 0", ("--steps 0: must be >= 1",)), ("--context 0", ("--context 0: must be >= 1",)),
                           ("--clip -1", ("--clip -1: must be >= 0",)), ("--scale 0", ("--scale 0: must be >= 1",)),
                           ("--frames 4 --actions {nan_actions}", ("--actions", "holds NaN or infinite values")),
                           ("--frames 4 --actions {text}", ("--actions", "not a .npy array")))],
    Row("sample without its dataset", "sample --ckpt {stage1_ckpt} --data {misspelled} --out {out}/s.gif",
        ("--data", "no manifest.json there", "data/toy32")),
    Row("sample a stage-0 checkpoint", "sample --ckpt {stage0_ckpt} --data {data} --out {out}/s.gif",
        ("--ckpt", "bidirectional (stage-0) model cannot stream")),
    Row("play without its dataset", "play --ckpt {stage1_ckpt} --data {misspelled}", ("--data",)),
    Row("play a stage-0 checkpoint", "play --ckpt {stage0_ckpt} --data {data}",
        ("--ckpt", "bidirectional (stage-0) model cannot stream")),
    *[Row(f"play {flags}", f"play --ckpt {{stage1_ckpt}} --data {{data}} {flags}", words)
      for flags, words in (("--port 99999", ("--port 99999: must be in 0-65535",)),
                           ("--scene -1", ("--scene -1: must be >= 0",)),
                           ("--max_sessions 0", ("--max_sessions 0: must be >= 1",)),
                           ("--steps 0", ("--steps 0: must be >= 1", "checkpoint's own")),
                           ("--device cuda:0", ("--device cuda:0", "no CUDA GPU")),
                           ("--device tpu9", ("--device tpu9: not a device",)),
                           ("--record_dir {text}", ("--record_dir", "cannot write there")))],
    # configs as the parser sees them: one line, the key and the reason
    Row("a NaN learning rate", "fit --config {stage1} --model.init_args.optimizer.lr=nan",
        ("model.init_args.optimizer.lr: Expected a <class 'float'>. Got value: nan",)),
    Row("a negative learning rate", "fit --config {stage1} --model.init_args.optimizer.lr=-1",
        ("model.init_args.optimizer.lr must be a finite number > 0, got -1.0",)),
    Row("a zero discriminator learning rate",
        "fit --config {stage3} --model.init_args.discriminator.optimizer.lr=0",
        ("model.init_args.discriminator.optimizer.lr must be a finite number > 0",)),
    Row("a shortened key", "fit --config {stage1} --model.init_args.backbone.num_head=8",
        ("model.init_args.backbone has no setting 'num_head'", "did you mean model.init_args.backbone.num_heads?")),
    Row("a backbone given as a list", "fit --config {stage1} --model.init_args.backbone=[48,2,2]",
        ("model.init_args.backbone must be a mapping of its fields", "got [48, 2, 2]")),
    Row("a binary config", "fit --config {plain_zip}", ("--config", "not a text file")),
    Row("a list-shaped config", "fit --config {list_yaml}", ("--config", "expected a mapping", "got a list")),
    Row("an empty config", "fit --config {empty}", ("--config", "got an empty file")),
    Row("a setting beside model.class_path", "fit --config {misplaced}",
        ("model.ema_decay is beside model.class_path", "go under model.init_args")),
    Row("a config that is a folder", "fit --config {folder}", ("--config", "is a folder")),
    Row("data given as a number", "fit --config {data_number}", ("error: data:", "a dict with parameters")),
    Row("a tab-indented config", "fit --config {tabs_yaml}", ("--config", "tabs_yaml.yaml", "line 2")),
    Row("a negative max_steps", "fit --config {stage1} --trainer.max_steps=-5", ("trainer:", "max_steps", "-5")),
    # the other commands: pipeline, plan, stream, sweep
    Row("pipeline: a YAML that is not a mapping", "pipeline --config {text}",
        ("--config", "expected a mapping with experiment_dir and a list of stages")),
    Row("pipeline: a binary file", "pipeline --config {plain_zip}", ("--config", "not a YAML mapping")),
    Row("pipeline: a missing file", "pipeline --config {missing}", ("--config", "no such file")),
    Row("pipeline: a stage config that does not exist", "pipeline --config {pipeline_missing_stage}",
        ("stages[0] (stage1): config", "does not exist")),
    Row("plan --gpus 0", "plan --gpus 0", ("--gpus 0: must be >= 1", "leave it out")),
    Row("plan: a list-shaped YAML", "plan --config {list_yaml}", ("--config", "expected a mapping", "got a list")),
    Row("stream: an unknown preset", "stream --preset nope", ("--preset 'nope': choose one of",)),
    Row("stream --frames 0", "stream --frames 0", ("--frames 0: must be >= 1",)),
    Row("sweep: a missing config", "sweep --config {missing} --grid a=[1] --out {out}/sweep",
        ("--config", "no such file")),
    Row("sweep --nodes 0", "sweep --config {stage1} --grid a=[1] --nodes 0 --out {out}/sweep",
        ("--nodes 0: must be >= 1",)),
    # resume: the config must agree with the checkpoint it continues
    Row("resume with a changed backbone", "fit --config {stage1} --ckpt_path {stage1_ckpt} "
        "--model.init_args.backbone.dim=64",
        ("--ckpt_path=", "model.init_args.backbone.dim: checkpoint 48, config 64")),
    Row("resume with a changed learning rate", "fit --config {stage1} --ckpt_path {stage1_ckpt} "
        "--model.init_args.optimizer.lr=0.5", ("model.init_args.optimizer.lr: checkpoint 0.001, config 0.5",)),
    Row("resume a stage-1 checkpoint under stage 0", "fit --config {stage0} --ckpt_path {stage1_ckpt}",
        ("--ckpt_path=", "a DiffusionAdaptation checkpoint", "model.class_path is BidirectionalPretraining")),
    Row("resume with another data seed", "fit --config {stage1} --ckpt_path {stage1_ckpt} --data.init_args.seed=5",
        ("data.init_args.seed=5", "data stream used seed 0")),
    Row("resume with another batch size", "fit --config {stage1} --ckpt_path {stage1_ckpt} "
        "--data.init_args.batch_size=3", ("data.init_args: resuming continues the run's data stream",
                                           "batch_size: checkpoint 2, config 3")),
    Row("resume with longer clips", "fit --config {stage1} --ckpt_path {stage1_ckpt} --data.init_args.num_frames=8",
        ("num_frames: checkpoint 6, config 8",)),
    Row("resume on another dataset", "fit --config {stage1} --ckpt_path {stage1_ckpt} "
        "--data.init_args.data_dir={data_other}", ("manifest_sha256: checkpoint",)),
    Row("resume from a checkpoint without optimizer state", "fit --config {stage1} --ckpt_path {no_optimizer}",
        ("--ckpt_path=", "holds no optimizer state", "init_from")),
    Row("resume from a checkpoint without loop state", "fit --config {stage1} --ckpt_path {no_loops}",
        ("--ckpt_path=", "holds no loop state (the step count")),
    # trainer and data settings a stage cannot honour
    Row("stage 3 with trainer.gradient_clip_val", "fit --config {stage3} --trainer.gradient_clip_val=1.0",
        ("trainer.gradient_clip_val=1.0", "model.init_args.grad_clip")),
    Row("num_frames 0", "fit --config {stage1} --data.init_args.num_frames=0", ("data.init_args.num_frames=0",)),
    Row("num_frames 1 for a causal stage", "fit --config {stage1} --data.init_args.num_frames=1",
        ("data.init_args.num_frames=1", "at least 2")),
    Row("window_frames 0", "fit --config {stage1} --model.init_args.backbone.window_frames=0",
        ("model.init_args.backbone.window_frames", "got 0")),
    Row("a manifest without shapes", "fit --config {stage1} --data.init_args.data_dir={no_shapes}",
        ("manifest.json", "no 'shapes'")),
    *[Row(f"a manifest with {case}", f"fit --config {{stage1}} --data.init_args.data_dir={{manifest_{key}}}",
          ("manifest.json", words))
      for key, case, words in (("shapes3", "3-entry latent shapes", "shapes.latents must be 4 positive integers"),
                               ("zero_std", "a zero std", "latent_stats.std must be at least 1e-08"),
                               ("std10", "10 std entries for 48 channels", "latent_stats.std must be 48 finite"),
                               ("list", "a list for an object", "expected a JSON object"),
                               ("no_splits", "no splits", "listing its shards"),
                               ("binary", "binary bytes", "is not valid JSON"))],
    Row("a manifest whose std is 1e-30", "fit --config {stage1} --data.init_args.data_dir={manifest_tiny_std}",
        ("manifest.json", "latent_stats.std")),
    Row("a manifest naming a codec this version does not know", "sample --ckpt {stage1_ckpt} "
        "--data {manifest_codec} --out {out}/k.gif", ("manifest.json", "sd-vae")),
    Row("a manifest whose toy world has a setting this version does not know", "sample --ckpt {stage1_ckpt} "
        "--data {manifest_toy_key} --out {out}/k.gif", ("manifest.json", "new_knob")),
    Row("prepare a negative number of clips", "prepare toy-world --out {data}_negative --spec {negative_spec}",
        ("train_clips", "-5")),
    Row("prepare with a world file as --spec", "prepare toy-world --out {data}_from_file --spec {tiny_world}",
        ("train and", "val clips to", "from_file"), rc=0),
    Row("prepare onto a finished dataset", "prepare toy-world --out {data} --spec {tiny_world}",
        ("already holds a dataset", "--overwrite true")),
    Row("a misspelled data_dir", "fit --config {stage1} --data.init_args.data_dir={misspelled}",
        ("data.init_args.data_dir=", "no manifest.json", "toy_world is not set")),
    Row("a misspelled data_dir with toy_world set", "fit --config {stage1} --data.init_args.data_dir={misspelled} "
        "--data.init_args.toy_world={tiny_world} --trainer.max_steps=1 --trainer.default_root_dir={out}/misspelled",
        ("holds no dataset", "rendering data.toy_world there", "did you mean", "/data (a dataset)"), rc=0),
    Row("toy_world over a folder of other files", "fit --config {stage1} --data.init_args.data_dir={out} "
        "--data.init_args.toy_world={tiny_world}",
        ("data.init_args.data_dir=", "holds files prepare does not write (notes.txt)", "refusing to delete")),
    Row("bad_sample_limit 0", "fit --config {stage1} --data.init_args.bad_sample_limit=0",
        ("data.init_args.bad_sample_limit=0", ">= 1")),
    # shards
    Row("a truncated shard", "fit --config {stage1} --data.init_args.data_dir={truncated_shard}",
        ("shard", "train-000000.tar", "unreadable or truncated")),
    Row("every training sample bad, skipped", "fit --config {stage1} --data.init_args.data_dir={all_bad} "
        "--data.init_args.bad_samples=skip --trainer.num_sanity_val_steps=0",
        ("64 bad samples in a row", "data.bad_sample_limit=64", "is not a readable .npy array"), fresh_process=True),
    # (SIGTERM while a run waits for data, and the faults: `test_faults.py`)
    Row("every validation sample bad, skipped", "fit --config {stage1} --data.init_args.data_dir={all_bad} "
        "--data.init_args.bad_samples=skip", ("a pass over 2 shard(s) found no good sample", "val-000000.tar"),
        fresh_process=True),
]


@pytest.fixture(scope="module")
def files(toy_data, tmp_path_factory) -> dict[str, Path]:
    """Stage-0 and stage-1 checkpoints of a tiny run, their configs, and every kind of bad file and dataset."""
    tmp = tmp_path_factory.mktemp("bad")
    for stage in ("stage0", "stage1", "stage3"):
        (tmp / stage).mkdir()
    data = tmp / "data"
    shutil.copytree(toy_data, data)
    stage0 = tiny_config("stage0", tmp / "stage0", data, steps=1)
    fit(stage0)
    stage0_ckpt = tmp / "stage0" / "stage0" / "checkpoints" / "last.ckpt"
    stage1 = tiny_config("stage1", tmp / "stage1", data, steps=1, init_from=str(stage0_ckpt))
    fit(stage1)
    stage1_ckpt = tmp / "stage1" / "stage1" / "checkpoints" / "last.ckpt"
    stage3 = tiny_config("stage3", tmp / "stage3", data, steps=1, init_from=str(stage1_ckpt),
                         discriminator={"init_from": str(stage1_ckpt)})
    fit(stage3)
    no_data = yaml.safe_load(stage1.read_text())
    del no_data["data"]
    (tmp / "no_data.yaml").write_text(yaml.safe_dump(no_data))
    tiny_world = tmp / "tiny_world.yaml"
    tiny_world.write_text(json.dumps(dataclasses.asdict(TINY_SPEC)))  # JSON is YAML

    checkpoint = torch.load(stage1_ckpt, weights_only=True)
    torch.save({**checkpoint, "backbone_config": {**checkpoint["backbone_config"], "quantum": 3}},
               tmp / "newer.ckpt")
    torch.save({**checkpoint, "backbone_config": [48, 2, 2]}, tmp / "list_config.ckpt")
    first = next(k for k in checkpoint["state_dict"] if k.startswith("ema."))
    torch.save({**checkpoint, "state_dict": {**checkpoint["state_dict"],
                                             first: torch.full_like(checkpoint["state_dict"][first], float("nan"))}},
               tmp / "nan.ckpt")
    torch.save({**checkpoint, "lora": {"rank": 4, "bogus": 1}}, tmp / "lora_key.ckpt")
    torch.save({**checkpoint, "latent_size": [9, 9]}, tmp / "other_size.ckpt")
    torch.save({**checkpoint, "optimizer_states": []}, tmp / "no_optimizer.ckpt")
    torch.save({k: v for k, v in checkpoint.items() if k != "loops"}, tmp / "no_loops.ckpt")
    data_other = tmp / "data_other"
    shutil.copytree(toy_data, data_other)
    manifest = json.loads((data_other / "manifest.json").read_text())
    (data_other / "manifest.json").write_text(json.dumps({**manifest, "fps": 2 * manifest["fps"]}))  # other data

    whole = stage1_ckpt.read_bytes()
    (tmp / "truncated.ckpt").write_bytes(whole[: len(whole) // 2])
    (tmp / "text.ckpt").write_text("hello, I am not a checkpoint\n")
    (tmp / "empty.ckpt").write_bytes(b"")
    (tmp / "old.gif").write_bytes(b"GIF89a someone's animation")
    (tmp / "list.yaml").write_text("- trainer\n- model\n")
    misplaced = yaml.safe_load(stage1.read_text())
    misplaced["model"]["ema_decay"] = 0.9
    (tmp / "misplaced.yaml").write_text(yaml.safe_dump(misplaced))
    (tmp / "pipeline_missing_stage.yaml").write_text(yaml.safe_dump(
        {"experiment_dir": str(tmp / "exp"), "stages": [{"name": "stage1", "config": str(tmp / "nowhere.yaml")}]}))
    np.save(tmp / "nan_actions.npy", np.full((4, 2), np.nan, np.float32))
    (tmp / "folder").mkdir()
    (tmp / "folder" / "notes.txt").write_text("x")
    torch.save({"weights": torch.zeros(2)}, tmp / "foreign.ckpt")
    torch.save({"state_dict": {}, "backbone_config": {}, "obj": Path("x")}, tmp / "pickled.ckpt")
    with zipfile.ZipFile(tmp / "plain.zip", "w") as z:
        z.writestr("a.txt", "just a zip")

    (tmp / "data_number.yaml").write_text(yaml.safe_dump({**yaml.safe_load(stage1.read_text()), "data": 5}))
    (tmp / "tabs_yaml.yaml").write_text("trainer:\n\tmax_steps: 1\n")
    (tmp / "negative_spec.json").write_text(json.dumps({**dataclasses.asdict(TINY_SPEC), "train_clips": -5}))
    torch.save({**checkpoint, "backbone_config": {**checkpoint["backbone_config"], "dim": 47}}, tmp / "dim47.ckpt")
    torch.save({k: v for k, v in checkpoint.items() if k != "optimizer_states"}, tmp / "no_optimizer_key.ckpt")
    torch.save({**checkpoint, "state_dict": {**checkpoint["state_dict"], "model.extra_weight": torch.zeros(2)}},
               tmp / "extra_weight.ckpt")
    text32 = recorded_backbone(checkpoint["backbone_config"]).replace(text_dim=32)
    save_backbone(CausalVideoDiT(text32), tmp / "text32.ckpt")  # whole and consistent: only the data differs
    assert run(["merge", "--ckpt", str(stage1_ckpt), "--out", str(tmp / "merged.ckpt")]) == 0
    merged = torch.load(tmp / "merged.ckpt", weights_only=True)
    torch.save({**merged, "sampling": {**merged["sampling"], "cfg_scale": 3.0}}, tmp / "bad_sampling.ckpt")
    (tmp / "pipeline_stage_map.yaml").write_text(yaml.safe_dump(
        {"experiment_dir": str(tmp / "exp"), "stages": {"stage1": str(stage1)}}))
    (tmp / "pipeline_no_dir.yaml").write_text(yaml.safe_dump({"stages": [{"name": "stage1", "config": str(stage1)}]}))

    no_shapes = tmp / "no_shapes"
    shutil.copytree(toy_data, no_shapes)
    manifest = json.loads((no_shapes / "manifest.json").read_text())
    del manifest["shapes"]
    (no_shapes / "manifest.json").write_text(json.dumps(manifest))

    truncated_shard = tmp / "truncated_shard"
    shutil.copytree(toy_data, truncated_shard)
    shard = truncated_shard / "train-000000.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    for other in truncated_shard.glob("train-*.tar"):  # the run meets the truncated shard first
        if other != shard:
            other.unlink()
    manifest = json.loads((truncated_shard / "manifest.json").read_text())
    manifest["splits"]["train"]["shards"] = ["train-000000.tar"]
    (truncated_shard / "manifest.json").write_text(json.dumps(manifest))

    def edited_manifest(name: str, edit) -> Path:
        folder = tmp / f"manifest_{name}"
        shutil.copytree(toy_data, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        text = edit(manifest)
        (folder / "manifest.json").write_bytes(text if isinstance(text, bytes) else json.dumps(text).encode())
        return folder

    stats = json.loads((toy_data / "manifest.json").read_text())["latent_stats"]
    manifests = {
        "shapes3": lambda m: {**m, "shapes": {**m["shapes"], "latents": m["shapes"]["latents"][:3]}},
        "zero_std": lambda m: {**m, "latent_stats": {**stats, "std": [0.0] * len(stats["std"])}},
        "std10": lambda m: {**m, "latent_stats": {**stats, "std": stats["std"][:10]}},
        "list": lambda m: [m],
        "no_splits": lambda m: {k: v for k, v in m.items() if k != "splits"},
        "binary": lambda m: b"\x89PNG\r\n\x1a\n\x00\xff",
        "tiny_std": lambda m: {**m, "latent_stats": {**stats, "std": [1e-30] * len(stats["std"])}},
        "codec": lambda m: {**m, "codec": {**m["codec"], "name": "sd-vae"}},
        "toy_key": lambda m: {**m, "toy_world": {**m["toy_world"], "new_knob": 1}},
    }
    edited = {f"manifest_{name}": edited_manifest(name, edit) for name, edit in manifests.items()}

    all_bad = tmp / "all_bad"
    shutil.copytree(toy_data, all_bad)
    for shard in all_bad.glob("*.tar"):
        with tarfile.open(shard, "w") as t:
            for i in range(8):
                for member in ("latents.npy", "text.npy", "controls.npy", "json"):
                    info = tarfile.TarInfo(f"{shard.stem}_{i:04d}.{member}")
                    info.size = 10
                    t.addfile(info, io.BytesIO(b"not an npy"))
    taken = socket.socket()  # another program's port, held while the module's rows run
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    out = tmp / "out"
    out.mkdir()
    (out / "notes.txt").write_text("someone's files")
    return {"stage0": stage0, "stage1": stage1, "stage3": stage3, "stage0_ckpt": stage0_ckpt,
            "stage1_ckpt": stage1_ckpt, "stage3_ckpt": tmp / "stage3" / "stage3" / "checkpoints" / "last.ckpt",
            "no_data": tmp / "no_data.yaml",
            "truncated": tmp / "truncated.ckpt",
            "text": tmp / "text.ckpt", "empty": tmp / "empty.ckpt", "old_gif": tmp / "old.gif",
            "list_yaml": tmp / "list.yaml", "misplaced": tmp / "misplaced.yaml",
            "pipeline_missing_stage": tmp / "pipeline_missing_stage.yaml",
            "nan_actions": tmp / "nan_actions.npy", "newer_ckpt": tmp / "newer.ckpt",
            "list_config_ckpt": tmp / "list_config.ckpt", "nan_ckpt": tmp / "nan.ckpt",
            "lora_key_ckpt": tmp / "lora_key.ckpt", "other_size_ckpt": tmp / "other_size.ckpt",
            "no_optimizer": tmp / "no_optimizer.ckpt", "no_loops": tmp / "no_loops.ckpt", "data_other": data_other,
            "folder": tmp / "folder",
            "missing": tmp / "missing.ckpt", "foreign": tmp / "foreign.ckpt", "pickled": tmp / "pickled.ckpt",
            "plain_zip": tmp / "plain.zip", "no_shapes": no_shapes, "truncated_shard": truncated_shard,
            "all_bad": all_bad, "misspelled": tmp / "dat", **edited,
            **{name: tmp / f"{name}.yaml" for name in ("data_number", "tabs_yaml", "pipeline_stage_map",
                                                        "pipeline_no_dir")},
            "negative_spec": tmp / "negative_spec.json",
            **{name: tmp / f"{name}.ckpt" for name in ("dim47", "no_optimizer_key", "extra_weight", "merged")},
            "dim47_ckpt": tmp / "dim47.ckpt", "text32_ckpt": tmp / "text32.ckpt",
            "bad_sampling_ckpt": tmp / "bad_sampling.ckpt", "tiny_world": tiny_world,
            "data": data, "out": out, "taken_port": taken.getsockname()[1], "taken_socket": taken}


@pytest.mark.parametrize("row", ROWS, ids=[r.case for r in ROWS])
def test_bad_input_is_named(row, files, capsys):
    argv = row.argv.format(**files).split()
    if row.fresh_process:
        done = run_cli(*argv, timeout=240, check=False)
        rc, out, err = done.returncode, done.stdout, done.stderr
    else:
        rc = run(argv)
        out, err = capsys.readouterr()
    assert rc == row.rc, f"{row.case}: exit {rc}\n{out[-2000:]}\n{err[-3000:]}"
    if row.rc == 2:
        assert "Traceback" not in err, err[-3000:]
        message = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(message) == 1, err[-3000:]
        text = message[0]
        assert len(text) < 900, text  # the reason, not a namespace dump
    else:
        text = out + err
    for words in row.words:
        assert words in text, f"{row.case}: {words!r} not in {text[-1500:]!r}"


def test_a_stage_checkpoint_records_the_latent_size_it_trained_on(files):
    from lightning_aapt.data import read_manifest

    shapes = read_manifest(files["data"]).shapes
    assert torch.load(files["stage1_ckpt"], weights_only=True)["latent_size"] == [shapes.height, shapes.width]


def test_unicode_and_spaces_in_paths_work(files, tmp_path):
    """A dataset, a checkpoint, a config and an output whose paths hold spaces and accents are read and written as
    any other (the rows split their commands at spaces, so these run here)."""
    odd = tmp_path / "dössier ü"
    shutil.copytree(files["data"], odd / "dätä é")
    shutil.copy(files["stage1_ckpt"], odd / "läst ckpt.ckpt")
    shutil.copy(files["stage1"], odd / "stäge 1.yaml")
    out = odd / "vidéo é" / "x é.gif"
    assert run(["sample", "--ckpt", str(odd / "läst ckpt.ckpt"), "--data", str(odd / "dätä é"), "--frames", "4",
                "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert run(["plan", "--config", str(odd / "stäge 1.yaml")]) == 0
