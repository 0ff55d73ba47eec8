"""A folder of video files -> WebDataset shards of latents and text embeddings (`prepare videos`).

Notation: T video frames per clip (1 + 4k for a causal VAE), F latent frames, z latent channels, H/W pixels,
L_i tokens of a caption, Dt text width.

Each video is decoded with PyAV, resampled to `fps` by nearest timestamp, resized to cover H x W and centre-
cropped, then cut into windows of `clip_frames` frames every `stride` frames. Each window is encoded from its own
first frame (a causal VAE encodes frame 0 alone: latent 0 is an image latent, AAPT's first frame); its caption
(a sidecar `<video>.txt`, or a JSONL / CSV of video, caption) is encoded once per video and stored up to its
length (`text.npy` (L_i, Dt)); batches pad it back with zeros to the encoder's `max_tokens`.

Resumable: a shard is closed only between videos, and `progress.json` (rewritten atomically after each shard)
lists the videos it holds (by resolved path, with size and modification time); a rerun keeps the finished shards and
starts after their videos however `--videos` is spelled, and refuses a finished video that changed. An unreadable or
too-short video, or one without a caption, is skipped and listed by name in the manifest. The manifest is
written last: its presence marks a complete dataset.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from datamodules.shards import ShardWriter, write_manifest
from lightning_aapt.codecs import LatentCodec
from lightning_aapt.codecs.base import latent_frames
from lightning_aapt.files import write_atomic
from lightning_aapt.text import TextEncoder, trimmed_lengths

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
PROGRESS = "progress.json"


def list_videos(videos: Path) -> list[Path]:
    """The video files of a folder (sorted), or those a text file lists (one path per line, relative to it)."""
    if videos.is_dir():
        found = sorted(p for p in videos.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    elif videos.is_file():
        lines = [line.strip() for line in videos.read_text().splitlines()]
        found = [(videos.parent / line) for line in lines if line and not line.startswith("#")]
    else:
        raise FileNotFoundError(f"--videos {videos}: no such folder or list file")
    if not found:
        raise FileNotFoundError(f"--videos {videos}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    return found


def read_captions(captions: Path | None) -> dict[str, str]:
    """video name (file name, or path as written) -> caption, from a JSONL ({"video", "caption"} per line) or a CSV
    with columns video, caption; {} when None (sidecar .txt files then)."""
    if captions is None:
        return {}
    if not captions.is_file():
        raise FileNotFoundError(f"--captions {captions}: no such file (JSONL or CSV of video, caption)")
    rows: list[dict] = []
    if captions.suffix.lower() == ".csv":
        with open(captions, newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        for n, line in enumerate(captions.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"--captions {captions}, line {n}: not JSON ({err})") from err
    try:
        return {str(row["video"]): str(row["caption"]) for row in rows}
    except KeyError as err:
        raise ValueError(f"--captions {captions}: every row needs 'video' and 'caption' (missing {err})") from err


def caption_of(video: Path, captions: dict[str, str]) -> str | None:
    for key in (str(video), video.name, video.stem):
        if key in captions:
            return captions[key]
    sidecar = video.with_suffix(".txt")
    return sidecar.read_text().strip() if sidecar.is_file() else None


def resize_and_crop(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (H, W, 3): scaled (Lanczos) to cover H x W, then centre-cropped."""
    from PIL import Image

    h, w = frame.shape[:2]
    scale = max(height / h, width / w)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    image = Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return np.asarray(image.crop((left, top, left + width, top + height)))


def read_frames(path: Path, fps: float, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8: the video at `fps` (nearest decoded frame to each time k / fps), resized and cropped."""
    import av

    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        previous = None  # (time, frame) of the last decoded frame
        k = 0
        for frame in container.decode(video=0):
            t = float(frame.time) if frame.time is not None else (previous[0] + 1e-9 if previous else 0.0)
            while k / fps <= t:  # frames at k / fps lie between the previous frame and this one
                target = k / fps
                pick = frame if previous is None or abs(t - target) <= abs(previous[0] - target) else previous[1]
                out.append(resize_and_crop(pick.to_ndarray(format="rgb24"), height, width))
                k += 1
            previous = (t, frame)
    if not out:
        raise ValueError("no decodable frames")
    return np.stack(out)


def windows(num_frames: int, clip_frames: int, stride: int) -> Iterator[int]:
    """Start frames of every full window of `clip_frames` frames, `stride` apart."""
    yield from range(0, num_frames - clip_frames + 1, stride)


class SkippedVideo(Exception):
    """A video that gives no clip; its message is the reason the manifest records."""


def usable_video(video: Path, captions: dict[str, str], fps: float, size: tuple[int, int], clip_frames: int,
                 stride: int) -> tuple[str, np.ndarray, list[int]]:
    """The caption, the frames (T, H, W, 3) and the window starts of a video, or `SkippedVideo` saying why not."""
    caption = caption_of(video, captions)
    if caption is None:
        raise SkippedVideo("no caption (no sidecar .txt, not in --captions)")
    try:
        frames = read_frames(video, fps, *size)
    except Exception as err:
        raise SkippedVideo(f"unreadable: {type(err).__name__}: {err}") from err
    starts = list(windows(len(frames), clip_frames, stride))
    if not starts:
        raise SkippedVideo(f"too short: {len(frames)} frames at {fps} fps, a clip needs {clip_frames}")
    return caption, frames, starts


def stamp(video: Path) -> list[int]:
    """What tells a video file changed without reading it: [bytes, modification time in ns]."""
    stat = video.stat()
    return [stat.st_size, stat.st_mtime_ns]


def finish_shard(writer: ShardWriter, clips: int, videos: list[str], state: dict, split: str, out: Path) -> None:
    """Close the writer's one shard and record it, with the videos it holds, in progress.json."""
    writer.close()
    state["splits"][split].append({"shard": writer.shards[0], "clips": clips, "videos": videos})
    write_atomic(out / PROGRESS, json.dumps(state, indent=1).encode())


def file_hash(path: Path) -> str:
    """sha256 of a file, or of a folder's files (sorted by name, each name and its bytes)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(file.relative_to(path.parent if path.is_file() else path).as_posix().encode())
        with open(file, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def prepare_videos(out: Path, videos: list[Path], captions: dict[str, str], codec: LatentCodec,
                   encoder: TextEncoder, size: tuple[int, int], fps: float, clip_frames: int, stride: int,
                   val_videos: int, samples_per_shard: int, record: dict, progress: bool = True) -> dict:
    """Encode `videos` into shards under `out` and write the manifest (see the module docstring); returns it.

    `record` holds what the manifest says of the codec and text encoder beyond their protocols (paths, hashes) and
    of the command."""
    start = time.perf_counter()
    height, width = size
    latent_frames(codec, clip_frames)  # the codec's frame rule, checked before any work
    if height % codec.spatial_factor or width % codec.spatial_factor:
        raise ValueError(f"--size {height}x{width} is not divisible by codec {codec.name}'s {codec.spatial_factor}")
    out.mkdir(parents=True, exist_ok=True)
    state = json.loads((out / PROGRESS).read_text()) if (out / PROGRESS).is_file() else {}
    if state and state.get("settings") != record["settings"]:
        raise ValueError(f"{out} holds shards written with other settings ({state.get('settings')}); use another "
                         "--out or --overwrite true")
    state = state or {"settings": record["settings"], "splits": {"train": [], "val": []}, "skipped": {}}
    sources = state.setdefault("sources", {})  # resolved path -> [bytes, mtime_ns] of each video encoded
    done = {v for split in state["splits"].values() for shard in split for v in shard["videos"]}
    for video in videos:
        name = str(video.resolve())
        if name in done and sources.get(name, stamp(video)) != stamp(video):
            raise ValueError(f"--videos: {video} changed since {out} encoded it (size or modification time); "
                             "rerun with --overwrite true to encode every video again")
    split_of = {v: ("val" if i >= len(videos) - val_videos else "train") for i, v in enumerate(videos)}
    bar = tqdm(total=len(videos), desc=f"encoding videos -> {out}", unit="video", disable=not progress,
               file=sys.stderr)
    for split in ("train", "val"):
        todo = [v for v in videos if split_of[v] == split and str(v.resolve()) not in done]
        bar.update(sum(1 for v in videos if split_of[v] == split) - len(todo))
        shards = state["splits"][split]
        writer, in_shard, clips = None, [], 0
        for video in todo:
            name = str(video.resolve())  # the same video however --videos spells its folder
            try:
                caption, frames, starts = usable_video(video, captions, fps, size, clip_frames, stride)
            except SkippedVideo as why:
                state["skipped"][name] = str(why)
                bar.update()
                continue
            text = encoder.encode([caption])  # (1, L, Dt)
            text = text[0, : max(trimmed_lengths(text)[0], 1)].numpy()  # (L_i, Dt)
            if writer is None:
                writer = ShardWriter(out, split, sys.maxsize, first_index=len(shards))  # closed between videos
            for s in starts:
                clip = torch.from_numpy(frames[s : s + clip_frames]).permute(0, 3, 1, 2)[None].float() / 255
                latents = codec.encode(clip)[0].float().numpy()  # (F, z, h, w)
                writer.write(f"{video.stem}_{s:06d}".replace(".", "_"), latents, text, None,
                             {"video": name, "start_frame": s, "fps": fps, "caption": caption})
                clips += 1
            in_shard.append(name)
            sources[name] = stamp(video)
            bar.update()
            if clips >= samples_per_shard:  # close between videos
                finish_shard(writer, clips, in_shard, state, split, out)
                writer, in_shard, clips = None, [], 0
        if writer is not None:
            finish_shard(writer, clips, in_shard, state, split, out)
    bar.close()
    splits = {split: {"clips": sum(s["clips"] for s in shards), "shards": [s["shard"] for s in shards],
                      "videos": sum(len(s["videos"]) for s in shards)}
              for split, shards in state["splits"].items()}
    if not splits["train"]["clips"]:
        raise ValueError(f"no training clips were written: {len(state['skipped'])} video(s) skipped "
                         f"({dict(list(state['skipped'].items())[:3])})")
    F = latent_frames(codec, clip_frames)
    manifest = {
        "format": "lightning_aapt/clips-v1", "source": "videos", "splits": splits,
        "shapes": {"latents": [F, codec.latent_channels, height // codec.spatial_factor,
                               width // codec.spatial_factor],
                   "text": [encoder.max_tokens, encoder.dim]},
        "fps": fps,
        "codec": {"name": codec.name, "latent_channels": codec.latent_channels,
                  "spatial_factor": codec.spatial_factor, "temporal_factor": codec.temporal_factor,
                  "first_frame_alone": codec.first_frame_alone, **record["codec"]},
        "latent_stats": {"mean": [0.0] * codec.latent_channels, "std": [1.0] * codec.latent_channels,
                         "measured_on": "none: the codec normalises with the VAE's own statistics"},
        "text_encoder": {"name": encoder.name, "dim": encoder.dim, "max_tokens": encoder.max_tokens,
                         "stored": "rows up to the caption's length; batches pad with zeros", **record["text"]},
        "skipped": state["skipped"],
        "made_by": {"command": record["command"], "settings": record["settings"],
                    "seconds": round(time.perf_counter() - start, 1)},
    }
    write_manifest(out, manifest)
    return manifest


__all__ = ["file_hash", "list_videos", "prepare_videos", "read_captions", "read_frames"]
