"""Shards: round trip, re-rendering ground truth, and clear errors on bad data."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.shards import ShardWriter
from datamodules.toy_world import encode_frames
from datamodules.web_video import ClipStream, WebVideoDataModule
from lightning_aapt.data import ClipShapes, DataError, Manifest, read_manifest
from lightning_aapt.errors import ConfigError
from lightning_aapt.world import simulate
from lightning_aapt.world.dataset import render_clip, spec_from_manifest
from tests.conftest import TINY_SPEC

pytestmark = pytest.mark.unit


def one_pass(directory: Path, split: str = "val", bad_samples: str = "fail", urls=None, num_frames: int = 8):
    dm = WebVideoDataModule(str(directory), num_frames=num_frames)
    stream = ClipStream(urls or dm.urls(split), dm.shapes, num_frames, resampled=False, shuffle=False,
                        random_crop=False, bad_samples=bad_samples)
    return list(stream)


def test_round_trip_gives_the_written_tensors(toy_data):
    clips = one_pass(toy_data, "val")
    assert len(clips) == TINY_SPEC.val_clips
    codec, encoder = TINY_SPEC.codec(), TINY_SPEC.text_encoder()
    for i in (0, 9):
        frames, actions, meta = render_clip(TINY_SPEC, "val", i)
        clip = clips[i]
        assert clip["key"].endswith(f"val_{i:07d}")
        assert torch.equal(clip["latents"], torch.from_numpy(encode_frames(codec, frames).astype(np.float32)))
        assert torch.equal(clip["controls"], torch.from_numpy(actions))
        text = encoder.encode([meta["caption"]])[0].numpy().astype(np.float16).astype(np.float32)
        assert torch.equal(clip["text"], torch.from_numpy(text))
        assert clip["meta"]["caption"] == meta["caption"]


def test_stored_clip_re_renders_exactly_from_its_seed_and_actions(toy_data):
    spec = spec_from_manifest(toy_data)
    codec = spec.codec()
    for clip in one_pass(toy_data, "train")[:5]:
        world = clip["meta"]["world"]
        episode = simulate(world["scene_seed"], clip["controls"].numpy(), spec.world)
        assert episode.caption == clip["meta"]["caption"]
        assert np.array_equal(encode_frames(codec, episode.frames).astype(np.float32), clip["latents"].numpy())
        pixels = (codec.decode(clip["latents"][None]) * 255).round().byte()[0].permute(0, 2, 3, 1).numpy()
        assert np.array_equal(pixels, episode.frames)


def test_manifest_records_shapes_and_provenance(toy_data):
    manifest = read_manifest(toy_data)
    assert manifest.record["shapes"]["latents"] == [8, 48, 4, 4]
    assert manifest.codec["name"] == "toy-dct4" and manifest.splits["train"]["clips"] == 24
    assert manifest.shapes == ClipShapes(8, 48, 4, 4, 24, 64, 2) and manifest.fps == TINY_SPEC.fps


def write_bad_shard(path: Path, latents: np.ndarray) -> str:
    with ShardWriter(path.parent, path.stem, 10) as writer:
        writer.write("good_0", np.zeros((8, 48, 4, 4)), np.zeros((24, 64)), np.zeros((8, 2)), {})
        writer.write("bad_1", latents, np.zeros((24, 64)), np.zeros((latents.shape[0], 2)), {})
    return str(path.parent / writer.shards[0])


@pytest.mark.parametrize(("latents", "message"), [
    (np.zeros((8, 12, 4, 4)), r"latents.npy has shape \(8, 12, 4, 4\)"),
    (np.full((8, 48, 4, 4), np.nan), "NaN"),
])
def test_bad_latents_name_the_shard_and_sample(toy_data, tmp_path, latents, message):
    url = write_bad_shard(tmp_path / "bad", latents)
    with pytest.raises(DataError, match=message) as err:
        one_pass(toy_data, urls=[url])
    assert url in str(err.value) and "bad_1" in str(err.value)
    clips = one_pass(toy_data, urls=[url], bad_samples="skip")
    assert [c["key"].split("#")[1] for c in clips] == ["good_0"]


def test_truncated_shard_names_the_shard_or_is_counted(toy_data, tmp_path):
    source = Path(WebVideoDataModule(str(toy_data)).urls("val")[0])
    truncated = tmp_path / "truncated.tar"
    data = source.read_bytes()
    truncated.write_bytes(data[: len(data) // 2 + 100])
    good = str(Path(source).with_name("val-000001.tar"))
    with pytest.raises(DataError, match="truncated") as err:
        one_pass(toy_data, urls=[str(truncated), good])
    assert str(truncated) in str(err.value)
    clips = one_pass(toy_data, urls=[str(truncated), good], bad_samples="skip")
    assert sum(c["skipped"] for c in clips) >= 1
    assert any(c["key"].startswith(good) for c in clips)  # the good shard still streams


def test_training_stream_crops_at_random_and_never_ends(toy_data):
    dm = WebVideoDataModule(str(toy_data), num_frames=5, batch_size=4)
    batches = iter(dm.train_dataloader())
    seen = [next(batches) for _ in range(12)]  # 48 clips from 24: resampled
    assert all(b.latents.shape == (4, 5, 48, 4, 4) and b.controls.shape == (4, 5, 2) for b in seen)
    assert len({m["crop_start"] for b in seen for m in b.meta}) > 1


def test_clips_shorter_than_num_frames_are_refused(toy_data):
    with pytest.raises(DataError, match="num_frames=20"):
        WebVideoDataModule(str(toy_data), num_frames=20).train_dataloader()


def test_missing_data_without_toy_spec_names_the_flag(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.init_args\.toy_world is not set"):
        _ = WebVideoDataModule(str(tmp_path / "nothing")).shapes


def test_shard_writer_leaves_no_partial_file_on_error(tmp_path):
    with pytest.raises(RuntimeError), ShardWriter(tmp_path, "x", 10) as writer:
        writer.write("a", np.zeros((2, 3, 2, 2)), np.zeros((1, 4)), None, {})
        raise RuntimeError("crash mid-shard")
    assert list(tmp_path.iterdir()) == []


def test_written_tar_holds_the_documented_members(toy_data):
    with tarfile.open(toy_data / "val-000000.tar") as tar:
        names = tar.getnames()[:4]
        key = names[0].split(".")[0]
        meta = json.load(tar.extractfile(f"{key}.json"))
        latents = np.load(io.BytesIO(tar.extractfile(f"{key}.latents.npy").read()))
    assert {n.split(".", 1)[1] for n in names} == {"latents.npy", "text.npy", "controls.npy", "json"}
    assert latents.dtype == np.float16 and meta["source"] == "toy-world" and "scene_seed" in meta["world"]


def test_data_module_serves_unit_scale_latents_that_decode_to_the_frames(toy_data):
    """`prepare` records per-channel statistics of the training latents; the data module serves them normalised
    (mean 0, std 1 per channel over the training split) and the manifest's codec decodes them to the frames."""
    dm = WebVideoDataModule(str(toy_data), num_frames=8)
    manifest = read_manifest(toy_data)
    assert len(manifest.latent_stats["mean"]) == len(manifest.latent_stats["std"]) == 48
    stream = ClipStream(dm.urls("train"), dm.shapes, 8, resampled=False, shuffle=False, random_crop=False,
                        stats=dm.latent_stats)
    clips = list(stream)
    latents = torch.stack([c["latents"] for c in clips]).double()  # (N, F, C, h, w)
    per_channel = latents.transpose(0, 2).flatten(1)  # (C, N*F*h*w)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(48, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(per_channel.std(1, correction=0), torch.ones(48, dtype=torch.float64), atol=1e-3,
                               rtol=0)
    raw_dc = torch.stack([c["latents"] for c in one_pass(toy_data, "train")])[:, :, 0]
    assert raw_dc.mean() < -0.3  # the stored latents are far from unit scale: the normalisation is doing work
    codec = manifest.normalized_codec()
    spec = spec_from_manifest(toy_data)
    for clip in clips[:3]:
        episode = simulate(clip["meta"]["world"]["scene_seed"], clip["controls"].numpy(), spec.world)
        pixels = (codec.decode(clip["latents"][None]) * 255).round().byte()[0].permute(0, 2, 3, 1).numpy()
        assert np.abs(pixels.astype(int) - episode.frames.astype(int)).max() <= 1
        reencoded = codec.encode(torch.from_numpy(episode.frames).permute(0, 3, 1, 2)[None].float() / 255)
        torch.testing.assert_close(reencoded[0], clip["latents"], atol=2e-2, rtol=0)


def test_manifest_without_statistics_serves_raw_latents(toy_data):
    record = dict(read_manifest(toy_data).record)
    del record["latent_stats"]
    stats = Manifest.from_record(record).stats()
    assert stats.mean == (0.0,) * 48 and stats.std == (1.0,) * 48
    record["latent_stats"] = {"mean": [0.0] * 48, "std": [1.0] * 47}
    with pytest.raises(DataError, match=r"latent_stats\.std must be 48 finite numbers"):
        Manifest.from_record(record)


SMALL_WORLD = ["--spec.train_clips", "2", "--spec.val_clips", "2", "--spec.clip_frames", "4", "--spec.world.size", "16"]


def test_overwrite_replaces_only_a_dataset_prepare_wrote(tmp_path, capsys):
    """`prepare toy-world --overwrite true` over a folder of someone's files deletes nothing and says why; over a
    dataset it wrote (or an unfinished one) it replaces exactly that."""
    from lightning_aapt.cli import run

    thesis = tmp_path / "thesis"
    (thesis / "src").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("chapter 1")
    (thesis / "src" / "notes.txt").write_text("notes")
    assert run(["prepare", "toy-world", "--out", str(thesis), "--overwrite", "true", *SMALL_WORLD]) == 2
    err = capsys.readouterr().err
    assert f"error: --out={thesis} holds files prepare does not write (src, thesis.tex)" in err, err
    assert (thesis / "thesis.tex").read_text() == "chapter 1" and (thesis / "src" / "notes.txt").exists()
    assert run(["prepare", "toy-world", "--out", str(thesis / "thesis.tex"), "--overwrite", "true", *SMALL_WORLD]) == 2
    assert "is a file, not a dataset folder" in capsys.readouterr().err
    assert (thesis / "thesis.tex").read_text() == "chapter 1"

    data = tmp_path / "data"
    assert run(["prepare", "toy-world", "--out", str(data), *SMALL_WORLD]) == 0
    (data / "train-000007.tar.tmp").write_bytes(b"a crashed render's leftover")
    assert run(["prepare", "toy-world", "--out", str(data), *SMALL_WORLD]) == 2
    assert "already holds a dataset (manifest.json); pass --overwrite true" in capsys.readouterr().err
    assert run(["prepare", "toy-world", "--out", str(data), "--overwrite", "true", *SMALL_WORLD]) == 0
    assert sorted(p.name for p in data.iterdir()) == ["manifest.json", "train-000000.tar", "val-000000.tar"]


def test_a_full_disk_leaves_no_half_file_and_one_line(tmp_path, monkeypatch, capsys):
    """torch.save's zip writer on a full disk ("unexpected pos") and a shard writer that cannot flush: the target
    is not replaced, no temporary file is left, and the command says so in one line (exit 2)."""
    import errno

    from lightning_aapt.files import atomic_path

    target = tmp_path / "model.ckpt"
    target.write_bytes(b"the earlier one")
    with pytest.raises(OSError, match=r"not written \(the disk filled up") as err, atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed; unexpected pos 64 vs 0")
    assert err.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"the earlier one" and sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "data" / "train-000000.tar.tmp"))

    monkeypatch.setattr(ShardWriter, "write", full)
    from lightning_aapt.cli import run

    assert run(["prepare", "toy-world", "--out", str(tmp_path / "data"), *SMALL_WORLD]) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert said == [f"error: {tmp_path / 'data' / 'train-000000.tar.tmp'}: No space left on device"]
    assert not list((tmp_path / "data").glob("*.tmp")) and not (tmp_path / "data" / "manifest.json").exists()
