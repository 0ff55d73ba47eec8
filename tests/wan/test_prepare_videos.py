"""`prepare videos` on short MP4s written here, with a tiny random Wan VAE and umT5; then a stage-1 fit from a tiny
random Wan transformer on those shards, and `sample` streaming through the VAE's frame-by-frame decoder."""

import json
import os

import numpy as np
import pytest
import torch
import yaml

from lightning_aapt.cli import main
from lightning_aapt.video import write_video
from tests.helpers_cli import EXPERIMENTS
from tests.wan import tiny

pytestmark = pytest.mark.wan
pytest.importorskip("diffusers")


def moving_square(frames: int, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    video = np.zeros((frames, height, width, 3), np.uint8)
    video[:] = rng.integers(40, 200, 3)
    for t in range(frames):
        x = 5 + 2 * t % (width - 20)
        video[t, 20:36, x:x + 16] = (230, 40, 40)
    return video


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepare")
    models = tiny.save_pipeline(root / "wan")
    videos = root / "videos"
    for i, caption in enumerate(["a red square moves right", "the red square moves slowly over grass",
                                 "a red ball rolls left"]):
        write_video(videos / f"clip{i}.mp4", moving_square(48, seed=i), fps=30)  # 1.6 s -> 26 frames at 16 fps
        (videos / f"clip{i}.txt").write_text(caption)
    write_video(videos / "a_short.mp4", moving_square(6), fps=30)
    (videos / "a_short.txt").write_text("too short")
    (videos / "a_broken.mp4").write_bytes(b"not a video at all")
    (videos / "a_broken.txt").write_text("unreadable")
    write_video(videos / "a_uncaptioned.mp4", moving_square(48), fps=30)
    out = root / "shards"
    argv = ["prepare", "videos", "--out", str(out), "--videos", str(videos), "--vae", str(models / "vae"),
            "--text_encoder", str(models), "--transformer", str(models / "transformer"), "--size", "[32, 32]",
            "--fps", "16", "--clip_frames", "9", "--stride", "8", "--val_videos", "1", "--samples_per_shard", "2"]
    assert main(argv) == 0
    return root, out, argv


def test_prepare_videos_writes_valid_shards(prepared):
    root, out, _ = prepared
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shapes"] == {"latents": [3, 4, 4, 4], "text": [512, 32]}  # 9 frames -> 1 + 2 latents, 32/8
    assert manifest["codec"]["first_frame_alone"] and manifest["codec"]["name"] == "wan2.1-vae"
    assert len(manifest["codec"]["sha256"]) == 64 and manifest["fps"] == 16
    # clip0 and clip1 train (3 windows each: 26 frames at 16 fps, starts 0, 8, 16), clip2 validation
    assert manifest["splits"]["train"]["clips"] == 6 and manifest["splits"]["val"]["clips"] == 3
    skipped = manifest["skipped"]
    assert set(skipped) == {str(root / "videos" / n) for n in ("a_short.mp4", "a_broken.mp4", "a_uncaptioned.mp4")}
    assert skipped[str(root / "videos" / "a_short.mp4")].startswith("too short")
    assert skipped[str(root / "videos" / "a_broken.mp4")].startswith("unreadable")

    from datamodules import WebVideoDataModule

    data = WebVideoDataModule(data_dir=str(out), num_frames=3, batch_size=2)
    data.setup("fit")
    assert data.first_frame_alone
    batch = next(iter(data.train_dataloader()))
    assert batch.latents.shape == (2, 3, 4, 4, 4) and batch.text.shape == (2, 512, 32)
    assert all(m["crop_start"] == 0 for m in batch.meta)  # latent 0 stays the image latent
    lengths = (batch.text.abs().amax(-1) > 0).sum(1)
    assert 0 < lengths.max() < 20 and batch.text[:, 20:].abs().max() == 0  # trimmed in the shard, padded here
    # the stored latents are the codec's encoding of the resampled frames
    codec = data.codec
    video = codec.decode(batch.latents[:1])
    assert video.shape == (1, 9, 3, 32, 32)


def members(shard) -> dict[str, bytes]:
    import tarfile

    with tarfile.open(shard) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_prepare_videos_resumes_keeping_finished_shards(prepared):
    root, out, argv = prepared
    before = {p.name: members(p) for p in out.glob("*.tar")}
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").unlink()  # as if killed before the end
    progress = json.loads((out / "progress.json").read_text())
    last = progress["splits"]["train"].pop()  # ... and before the last train shard was recorded
    (out / last["shard"]).unlink()
    (out / "progress.json").write_text(json.dumps(progress))
    assert main(argv) == 0
    after = {p.name: members(p) for p in out.glob("*.tar")}
    assert after == before  # the same dataset (member bytes; tar headers carry write times)
    kept = [n for n in stamp if n != last["shard"]]
    assert all((out / n).stat().st_mtime_ns == stamp[n] for n in kept)  # finished shards were not rewritten
    again = json.loads((out / "manifest.json").read_text())
    assert again["splits"] == manifest["splits"]


def test_prepare_videos_overwrite_deletes_nothing_until_the_arguments_hold(prepared, tmp_path):
    """A mistyped --videos under --overwrite true keeps the finished dataset; a folder of someone's files is never
    taken for one."""
    from lightning_aapt.errors import ConfigError

    root, out, argv = prepared
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    bad = [*argv, "--overwrite", "true"]
    bad[bad.index("--videos") + 1] = str(root / "vidoes")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        main(bad)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("chapter 1")
    bad = [*argv, "--overwrite", "true"]
    bad[bad.index("--out") + 1] = str(mine)
    with pytest.raises(ConfigError, match=r"holds files prepare does not write \(thesis.tex\)"):
        main(bad)
    assert (mine / "thesis.tex").read_text() == "chapter 1"


def test_prepare_videos_resumed_by_another_spelling_of_the_folder_encodes_nothing_again(prepared, monkeypatch):
    root, out, argv = prepared
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").unlink()  # as if killed before the end
    monkeypatch.chdir(root)
    relative = [*argv]
    relative[relative.index("--videos") + 1] = "videos"  # the folder relative, not absolute
    assert main(relative) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")} == stamp
    assert json.loads((out / "manifest.json").read_text())["splits"] == manifest["splits"]
    video = root / "videos" / "clip0.mp4"
    video.write_bytes(video.read_bytes() + b"\0")  # a finished video changed
    (out / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"clip0.mp4 changed since .* encoded it"):
        main(relative)
    video.write_bytes(video.read_bytes()[:-1])  # put back, with the time it was encoded at: the dataset finishes
    encoded_at = json.loads((out / "progress.json").read_text())["sources"][str(video.resolve())][1]
    os.utime(video, ns=(encoded_at, encoded_at))
    assert main(relative) == 0


def test_prepare_videos_refuses_a_mismatched_transformer(prepared, tmp_path):
    root, _, argv = prepared
    other = tmp_path / "other"
    config = dict(tiny.TRANSFORMER, in_channels=8, out_channels=8)
    from diffusers import WanTransformer3DModel

    WanTransformer3DModel(**config).save_pretrained(other)
    bad = [*argv]
    bad[bad.index("--out") + 1] = str(tmp_path / "out")
    bad[bad.index("--transformer") + 1] = str(other)
    with pytest.raises(ValueError, match=r"takes 8 latent channels .* makes 4 channels"):
        main(bad)


@pytest.mark.parametrize("shipped", ["stage1", "stage1_lora"])
def test_stage1_fit_from_a_wan_checkpoint_then_sample_streams_through_the_vae(prepared, tmp_path, shipped):
    root, out, _ = prepared
    config = yaml.safe_load((EXPERIMENTS / "wan" / f"{shipped}.yaml").read_text())
    trainer = config["trainer"]
    trainer.update(accelerator="cpu", devices=1, strategy="auto", precision="32-true", max_steps=3,
                   val_check_interval=3, limit_val_batches=1, log_every_n_steps=1, enable_progress_bar=False,
                   default_root_dir=str(tmp_path / "run"), enable_model_summary=False)
    trainer["logger"]["init_args"]["save_dir"] = str(tmp_path)
    trainer["callbacks"][0]["init_args"]["every_n_train_steps"] = 3
    init = config["model"]["init_args"]
    init["backbone"].update(dim=48, depth=2, num_heads=2, mlp_dim=96, freq_dim=32, window_frames=2)
    init["init_from"] = str(root / "wan" / "transformer")
    init["parallel"] = {}  # one CPU process: no FSDP2 mixed precision, no compilation
    config["data"]["init_args"].update(data_dir=str(out), num_frames=3, batch_size=2, num_workers=0)
    path = tmp_path / "stage1.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path)]) == 0
    ckpt = tmp_path / shipped / "checkpoints" / "last.ckpt"
    recorded = torch.load(ckpt, map_location="cpu", weights_only=True)["lora"]
    assert (recorded or {}).get("rank") == (32 if shipped == "stage1_lora" else None)
    video = tmp_path / "stream.mp4"
    assert main(["sample", "--ckpt", str(ckpt), "--out", str(video), "--data", str(out), "--frames", "5",
                 "--context", "1", "--steps", "2", "--scale", "1"]) == 0
    import av

    with av.open(str(video)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 1 + 4 * 4 and decoded[0].shape == (32, 32, 3)  # 5 latents, the first alone
