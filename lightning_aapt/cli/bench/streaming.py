"""Streaming suite: time per latent frame of the 1-NFE cached generator against the alternatives a user would pick.

Notation: W window frames, S sink frames, C latent channels, h/w latent size.

Rows, all the same network shape, untrained weights (speed does not depend on training), batch 1:
- AAPT: `StreamingGenerator`, 1 NFE per frame, KV cache (sink + ring);
- no KV cache: every frame recomputes its whole visible context (S + W frames) in one masked forward;
- 4 Euler steps per frame through the same cache (CausVid / Self-Forcing style);
- chunked bidirectional diffusion: the bidirectional form regenerates a chunk of W frames jointly with 4 steps,
  cost per output frame = chunk time / W.
The cached generator is timed at frame indices 1 .. 1000 (median of the 21 frames around each index) to show the
cost stays flat; warm-up frames excluded; decode timed separately (toy codec, one latent frame -> one video frame).
The window is AAPT's 30 frames + 1 sink unless `window_frames` is given (the toy model trains with 4, which makes
recomputing the window cheap; speed does not depend on the weights).
"""

from __future__ import annotations

import statistics
import time

import torch

from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT
from lightning_aapt.cli.bench.timing import median_seconds, synchronize
from lightning_aapt.codecs import ToyCodec
from lightning_aapt.diffusion import euler_sample, timestep_schedule
from lightning_aapt.inference import StreamingGenerator

INDICES = (1, 10, 40, 100, 250, 500, 1000)


def build(cfg: BackboneConfig, device: torch.device, dtype: torch.dtype) -> CausalVideoDiT:
    """Untrained weights, initialised on the device itself (an 8B model in seconds, no host copy)."""
    torch.manual_seed(0)
    with torch.device(device):
        model = CausalVideoDiT(cfg)
    return model.to(dtype=dtype).eval()


def frame_times(model: CausalVideoDiT, latent_size: tuple[int, int], frames: int, steps: int,
                device: torch.device) -> list[float]:
    """Seconds to generate each frame 1 .. frames of one stream (frame 0 is the given first frame)."""
    cfg = model.cfg
    dtype = next(model.parameters()).dtype
    gen = StreamingGenerator(model, steps=steps, max_frames=frames + 2)
    text = torch.randn(1, 16, cfg.text_dim, device=device, dtype=dtype)
    controls = torch.zeros(1, cfg.control_dim, device=device, dtype=dtype) if cfg.control_dim else None
    gen.reset(text, first_frame=torch.randn(1, cfg.latent_channels, *latent_size, device=device, dtype=dtype))
    times = []
    for _ in range(frames):
        synchronize(device)
        start = time.perf_counter()
        gen.step(controls)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


SPAN = 21  # frames whose median is "the time at frame i": single frames jitter by +-30% on a shared CPU


def at(times: list[float], index: int) -> float:
    """Median time of frames index-10 .. index+10 (1-based; frame 1 is the first generated), clipped to the run."""
    lo = max(0, min(index - 1 - SPAN // 2, len(times) - SPAN))
    return statistics.median(times[lo : lo + SPAN])


def no_cache_seconds(model: CausalVideoDiT, latent_size: tuple[int, int], device: torch.device) -> float:
    """One frame without a cache: a masked forward over the visible context plus the new frame."""
    cfg = model.cfg
    dtype = next(model.parameters()).dtype
    frames = (cfg.window_frames or 32) + (cfg.sink_frames if cfg.window_frames else 0)
    x = torch.randn(1, frames, cfg.latent_channels, *latent_size, device=device, dtype=dtype)
    t = torch.ones(1, frames, device=device, dtype=dtype)
    text = torch.randn(1, 16, cfg.text_dim, device=device, dtype=dtype)
    controls = torch.zeros(1, frames, cfg.control_dim, device=device, dtype=dtype) if cfg.control_dim else None
    recycled = torch.randn_like(x) if cfg.recycled_input else None

    def run():
        with torch.inference_mode():
            model(x, t, recycled, text, controls)

    return median_seconds(run, device)


def chunk_seconds_per_frame(cfg: BackboneConfig, latent_size: tuple[int, int], device: torch.device,
                            dtype: torch.dtype, steps: int = 4) -> float:
    """Bidirectional chunk of W frames regenerated jointly with `steps` Euler steps, per output frame."""
    chunk = cfg.window_frames or 8
    model = build(cfg.replace(bidirectional=True, recycled_input=False, window_frames=None), device, dtype)
    text = torch.randn(1, 16, cfg.text_dim, device=device, dtype=dtype)
    controls = torch.zeros(1, chunk, cfg.control_dim, device=device, dtype=dtype) if cfg.control_dim else None
    noise = torch.randn(1, chunk, cfg.latent_channels, *latent_size, device=device, dtype=dtype)
    schedule = timestep_schedule(steps, 1.0, device=device)

    def velocity(x, t, i):
        return model(x, t.reshape(1, 1).expand(1, chunk).to(dtype), None, text, controls)

    def run():
        with torch.inference_mode():
            euler_sample(velocity, noise, schedule)

    return median_seconds(run, device, repeats=3, warmup=1) / chunk


def decode_seconds(latent_size: tuple[int, int]) -> float:
    codec = ToyCodec(4)
    z = torch.randn(1, 1, codec.latent_channels, *latent_size)
    return median_seconds(lambda: codec.decode(z), torch.device("cpu"), repeats=20)


def run(cfg: BackboneConfig, latent_size: tuple[int, int], device: torch.device, dtype: torch.dtype,
        frames: int = 1000, warmup: int = 8) -> dict:
    model = build(cfg, device, dtype)
    frame_times(model, latent_size, warmup, 1, device)  # kernels, caches, allocator: not timed
    times = frame_times(model, latent_size, frames + SPAN // 2, 1, device)
    curve = {i: at(times, i) for i in INDICES if i <= frames}
    steady_index = min(40, frames)
    steady = at(times, steady_index)
    window = (cfg.window_frames or 8) + cfg.sink_frames + 8
    four = statistics.median(frame_times(model, latent_size, window + 5, 4, device)[window:])
    no_cache = no_cache_seconds(model, latent_size, device)
    chunk = chunk_seconds_per_frame(cfg, latent_size, device, dtype)
    out = {"seconds_per_frame": steady, "seconds_at_frame": {str(k): v for k, v in curve.items()},
           "seconds_no_cache": no_cache, "seconds_4_steps": four, "seconds_chunk_bidirectional_4_steps": chunk,
           "speedup_vs_no_cache": no_cache / steady, "speedup_vs_4_steps": four / steady,
           "speedup_vs_chunk_bidirectional": chunk / steady,
           "cost_ratio_frame1000_vs_frame40": curve[max(curve)] / at(times, min(40, max(curve))),
           "fps_without_decode": 1 / steady, "window_frames": cfg.window_frames, "sink_frames": cfg.sink_frames}
    if cfg.latent_channels == ToyCodec(4).latent_channels:
        decode = decode_seconds(latent_size)
        out.update(seconds_decode=decode, toy_fps_with_decode=1 / (steady + decode))
    return out


def table(r: dict, cfg_name: str, latent_size: tuple[int, int]) -> str:
    ms = 1e3
    lines = [f"| method ({cfg_name}, latents {latent_size[0]}x{latent_size[1]}, window {r['window_frames']} + sink "
             f"{r['sink_frames']}, batch 1) | ms / latent frame | "
             "AAPT is faster by |", "|---|---|---|",
             f"| AAPT: 1 NFE, KV cache (frame 40) | {ms * r['seconds_per_frame']:.2f} | 1.00x |",
             f"| no KV cache (recompute the window) | {ms * r['seconds_no_cache']:.2f} | "
             f"{r['speedup_vs_no_cache']:.2f}x |",
             f"| 4 Euler steps per frame, KV cache | {ms * r['seconds_4_steps']:.2f} | "
             f"{r['speedup_vs_4_steps']:.2f}x |",
             f"| chunked bidirectional, 4 steps | {ms * r['seconds_chunk_bidirectional_4_steps']:.2f} | "
             f"{r['speedup_vs_chunk_bidirectional']:.2f}x |", "",
             "| frame index | " + " | ".join(r["seconds_at_frame"]) + " |",
             "|---" * (len(r["seconds_at_frame"]) + 1) + "|",
             "| ms (1 NFE, cached) | " + " | ".join(f"{ms * v:.2f}" for v in r["seconds_at_frame"].values()) + " |",
             "", f"frame 1000 / frame 40: {r['cost_ratio_frame1000_vs_frame40']:.3f}; "
             f"{r['fps_without_decode']:.1f} latent frames/s without decode"]
    if "toy_fps_with_decode" in r:
        lines[-1] += (f"; toy decode {ms * r['seconds_decode']:.3f} ms/frame, {r['toy_fps_with_decode']:.1f} "
                      "frames/s with decode")
    return "\n".join(lines)
