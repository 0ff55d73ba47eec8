"""Streaming suite: what a user of a real-time generator feels, per method, measured interleaved in one run.

Notation: W window frames, S sink frames, C latent channels, h/w latent size, B streams decoded together.

Methods, all the same network shape, untrained weights (speed does not depend on training):
- `aapt`: `StreamingGenerator`, 1 NFE per frame, KV cache (sink + ring), batch 1; `aapt_batch<B>`: B streams at once
  (frames/s per device for serving);
- `no_cache`: every frame recomputes its whole visible context (S + W frames) in one masked forward;
- `four_steps`: 4 Euler steps per frame through the same cache (CausVid / Self-Forcing style);
- `chunk_bidirectional`: the bidirectional form regenerates a chunk of W frames jointly with 4 steps; a chunk's
  first frame waits for the whole chunk;
- `aapt_graph` (CUDA, bounded window): `aapt` with its steady steps replayed as CUDA graphs (`StepGraphs`).

Per method: time to first frame (a new stream: reset, prompt, first step, first frame decoded), the step time per
output frame after warm-up (median and p99 of every sample), frames/s without and with decode (decode right after
each step, as a player shows frames), and peak memory (on a GPU the method's weights plus the allocator's peak
above what was held before it began; on the CPU the peak RSS of a fresh process running only that method, torch
and weights included: in one process RSS freed by one method is reused by the next).

Interleaved: round r runs a burst of every method (at least two calls, for a quarter second; the first call of a
burst, on caches the other method left cold, is dropped), in an order rotated each round, so a load that comes and
goes hits all methods alike; ratios are medians of per-round ratios of the bursts' medians. The cost curve streams
one long stream next to a young one (forked at frame 40, re-forked every few frames), step for step, so "frame
1000 / frame 40" compares neighbours in time. GPU work is synchronised before every clock read; the JSON keeps
every sample.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT
from lightning_aapt.cli.bench.timing import PeakMemory, peak_rss_bytes, percentile, synchronize
from lightning_aapt.codecs import ToyCodec
from lightning_aapt.diffusion import euler_sample, timestep_schedule
from lightning_aapt.inference import OverlappedDecoder, StreamingGenerator
from lightning_aapt.tables import markdown_table

INDICES = (1, 10, 40, 100, 250, 500, 1000)
SPAN = 21  # frames whose median is "the time at frame i": single frames jitter by +-30% on a shared CPU
YOUNG = 40  # the reference frame index of the cost curve


def build(cfg: BackboneConfig, device: torch.device, dtype: torch.dtype) -> CausalVideoDiT:
    """Untrained weights, initialised on the device itself (an 8B model in seconds, no host copy)."""
    torch.manual_seed(0)
    with torch.device(device):
        model = CausalVideoDiT(cfg)
    return model.to(dtype=dtype).eval()


def frame_times(model: CausalVideoDiT, latent_size: tuple[int, int], frames: int, steps: int,
                device: torch.device) -> list[float]:
    """Seconds to generate each frame 1 .. frames of one stream (frame 0 is the given first frame)."""
    gen, controls = new_stream(model, latent_size, 1, steps, frames + 2)
    times = []
    for _ in range(frames):
        times.append(timed(lambda: gen.step(controls), device)[1])
    return times


def timed(fn: Callable[[], Tensor], device: torch.device) -> tuple[Tensor, float]:
    """fn()'s result and its wall time, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def new_stream(model: CausalVideoDiT, latent_size: tuple[int, int], batch: int, steps: int,
               max_frames: int, cuda_graphs: bool = False) -> tuple[StreamingGenerator, Tensor | None]:
    """A started stream of `batch` streams from a random first frame and prompt, and its (zero) controls (B, A)."""
    cfg = model.cfg
    p = next(model.parameters())
    gen = StreamingGenerator(model, steps=steps, max_frames=max_frames, cuda_graphs=cuda_graphs)
    gen.reset(torch.randn(batch, 16, cfg.text_dim, device=p.device, dtype=p.dtype),
              first_frame=torch.randn(batch, cfg.latent_channels, *latent_size, device=p.device, dtype=p.dtype))
    controls = torch.zeros(batch, cfg.control_dim, device=p.device, dtype=p.dtype) if cfg.control_dim else None
    return gen, controls


@dataclass
class Method:
    """One way to stream: `start()` begins a new stream and returns its first output latents, `call()` one steady
    call's output latents (B, F, C, H, W); `frames_per_call` = B * F; `warmup_calls` after a start reach the steady
    state (the window full)."""

    key: str
    label: str
    batch: int
    frames_per_call: int
    warmup_calls: int
    start: Callable[[], Tensor]
    call: Callable[[], Tensor]
    decodes_itself: bool = False  # the call includes decoding its frames (overlapped with the next step)
    weight_bytes: int = 0  # of the network it runs


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def cached(key: str, label: str, model: CausalVideoDiT, latent_size: tuple[int, int], batch: int, steps: int,
           max_frames: int, cuda_graphs: bool = False) -> Method:
    cfg = model.cfg
    state: dict = {}

    def start() -> Tensor:
        state["gen"], state["controls"] = new_stream(model, latent_size, batch, steps, max_frames, cuda_graphs)
        return call()

    def call() -> Tensor:
        return state["gen"].step(state["controls"])[:, None]  # (B, 1, C, H, W)

    window = cfg.visible_frames or 8
    # with graphs: eager until settled, each ring phase once eagerly, then once captured; replays after that
    warmup = 2 * window + 2 * (cfg.window_frames or 0) + 2 if cuda_graphs else window + 2
    return Method(key, label, batch, batch, warmup, start, call, weight_bytes=weight_bytes(model))


def overlapped(model: CausalVideoDiT, latent_size: tuple[int, int], decode: Callable[[Tensor], Tensor],
               max_frames: int) -> Method:
    """`aapt` with decode overlapped: frame f is decoded (side stream or thread) while frame f + 1 is computed."""
    inner = cached("aapt", "", model, latent_size, 1, 1, max_frames)
    decoder = OverlappedDecoder(decode, next(model.parameters()).device)
    pending: list = []

    def finish(latents: Tensor) -> Tensor:
        done = pending[:]
        pending[:] = [decoder.submit(latents[:, 0:1])]
        for handle in done:
            handle.result()  # the previous frame's pixels, decoded while this frame was computed
        return latents

    def first() -> Tensor:  # a new stream's first frame is shown decoded: nothing to overlap it with
        for handle in pending:
            handle.result()
        latents = inner.start()
        decoder.submit(latents[:, 0:1]).result()
        pending.clear()
        return latents

    return Method("aapt_overlapped", "AAPT, decode overlapped with the next step", 1, 1, inner.warmup_calls,
                  first, lambda: finish(inner.call()), decodes_itself=True,
                  weight_bytes=inner.weight_bytes)


def recompute(model: CausalVideoDiT, latent_size: tuple[int, int]) -> Method:
    """No KV cache: each frame is a masked forward over its visible context (S + W frames) and itself."""
    cfg = model.cfg
    p = next(model.parameters())
    frames = cfg.visible_frames or 32
    x = torch.randn(1, frames, cfg.latent_channels, *latent_size, device=p.device, dtype=p.dtype)
    t = torch.ones(1, frames, device=p.device, dtype=p.dtype)
    text = torch.randn(1, 16, cfg.text_dim, device=p.device, dtype=p.dtype)
    controls = torch.zeros(1, frames, cfg.control_dim, device=p.device, dtype=p.dtype) if cfg.control_dim else None
    recycled = torch.randn_like(x) if cfg.recycled_input else None

    def forward(n: int) -> Tensor:
        with torch.inference_mode():
            v = model(x[:, :n], t[:, :n], None if recycled is None else recycled[:, :n], text,
                      None if controls is None else controls[:, :n])
        return (x[:, n - 1 : n] - v[:, -1:])  # (1, 1, C, H, W): x0 of the newest frame

    return Method("no_cache", "no KV cache (recompute the window)", 1, 1, 0, lambda: forward(1),
                  lambda: forward(frames), weight_bytes=weight_bytes(model))


def chunked(cfg: BackboneConfig, latent_size: tuple[int, int], device: torch.device, dtype: torch.dtype,
            steps: int = 4) -> Method:
    """Bidirectional chunks of W frames regenerated jointly with `steps` Euler steps."""
    chunk = cfg.window_frames or 8
    model = build(cfg.replace(bidirectional=True, recycled_input=False, window_frames=None), device, dtype)
    text = torch.randn(1, 16, cfg.text_dim, device=device, dtype=dtype)
    controls = torch.zeros(1, chunk, cfg.control_dim, device=device, dtype=dtype) if cfg.control_dim else None
    noise = torch.randn(1, chunk, cfg.latent_channels, *latent_size, device=device, dtype=dtype)
    schedule = timestep_schedule(steps, 1.0, device=device)

    def velocity(x: Tensor, t: Tensor, i: int) -> Tensor:
        return model(x, t.reshape(1, 1).expand(1, chunk).to(dtype), None, text, controls)

    def call() -> Tensor:
        with torch.inference_mode():
            return euler_sample(velocity, noise, schedule)  # (1, W, C, H, W)

    return Method("chunk_bidirectional", f"chunked bidirectional, {steps} steps ({chunk}-frame chunks)", 1, chunk,
                  0, call, call, weight_bytes=weight_bytes(model))


METHODS = ("aapt", "no_cache", "four_steps", "chunk_bidirectional", "aapt_overlapped", "aapt_graph", "aapt_batch")


def methods(model: CausalVideoDiT | None, cfg: BackboneConfig, latent_size: tuple[int, int], device: torch.device,
            dtype: torch.dtype, batches: tuple[int, ...], max_frames: int, decode: Callable[[Tensor], Tensor] | None,
            only: tuple[str, ...] | None = None) -> list[Method]:
    """The methods to compare (`only`: their keys, default all; `run` always adds `aapt`, every ratio's reference),
    the causal ones on `model` (None when only `chunk_bidirectional` is wanted)."""
    wanted = set(only or METHODS)
    out = []
    if "aapt" in wanted:
        out.append(cached("aapt", "AAPT: 1 NFE, KV cache", model, latent_size, 1, 1, max_frames))
    if "no_cache" in wanted:
        out.append(recompute(model, latent_size))
    if "four_steps" in wanted:
        out.append(cached("four_steps", "4 Euler steps per frame, KV cache", model, latent_size, 1, 4, max_frames))
    if "chunk_bidirectional" in wanted:
        out.append(chunked(cfg, latent_size, device, dtype))
    if "aapt_overlapped" in wanted and decode is not None:
        out.append(overlapped(model, latent_size, decode, max_frames))
    if "aapt_graph" in wanted and device.type == "cuda" and cfg.window_frames:
        out.append(cached("aapt_graph", "AAPT, CUDA graphs", model, latent_size, 1, 1, max_frames, cuda_graphs=True))
    if "aapt_batch" in wanted:
        out += [cached(f"aapt_batch{b}", f"AAPT, {b} streams at once", model, latent_size, b, 1, max_frames)
                for b in batches if b != 1]
    return out


def decoder_for(cfg: BackboneConfig) -> Callable[[Tensor], Tensor] | None:
    """Decode latents (B, F, C, H, W) -> pixels: the toy codec when the channels are its own, else None."""
    block = round((cfg.latent_channels / 3) ** 0.5)
    if 3 * block * block != cfg.latent_channels:
        return None
    codec = ToyCodec(block)
    return lambda z: codec.decode(z.float())


def _peak_in_child(cfg: BackboneConfig, latent_size: tuple[int, int], dtype: torch.dtype, key: str,
                   batches: tuple[int, ...], max_frames: int, answer) -> None:
    cpu = torch.device("cpu")
    model = None if key == "chunk_bidirectional" else build(cfg, cpu, dtype)
    (m,) = methods(model, cfg, latent_size, cpu, dtype, batches, max_frames, decoder_for(cfg), (key,))
    m.start()
    for _ in range(m.warmup_calls + 1):
        m.call()
    answer.put(peak_rss_bytes())


def fresh_process_peak(cfg: BackboneConfig, latent_size: tuple[int, int], dtype: torch.dtype, key: str,
                       batches: tuple[int, ...], max_frames: int) -> int | None:
    """Peak RSS of a new process that imports torch, builds one method's model(s) and streams it to its steady
    state: what a user's process running only that method holds at its peak (None off Linux)."""
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    child = context.Process(target=_peak_in_child, args=(cfg, latent_size, dtype, key, batches, max_frames, answer))
    child.start()
    child.join()
    return answer.get() if child.exitcode == 0 else None


def rotated(items: list, r: int) -> list:
    k = r % len(items)
    return items[k:] + items[:k]


def measure(ms: list[Method], decode: Callable[[Tensor], Tensor] | None, device: torch.device, rounds: int,
            starts: int, burst_seconds: float = 0.25) -> dict[str, dict]:
    """Every method's samples: memory on a first pass, then interleaved starts, then interleaved steady calls: per
    round a burst of each method's calls (at least 2, until `burst_seconds`), its first call dropped."""
    samples = {m.key: {"ttff_seconds": [], "call_seconds": [], "round_call_seconds": [],
                       "decode_seconds_per_frame": []} for m in ms}

    def decoded(latents: Tensor) -> float:  # seconds to decode every frame of a call's output (B, F, ...), F calls
        if decode is None:
            return float("nan")
        return sum(timed(lambda f=f: decode(latents[:, f : f + 1]), device)[1] for f in range(latents.shape[1]))

    for m in ms:  # untimed: first-use costs (kernels, allocator), and the method's peak memory
        with PeakMemory(device) as peak:
            m.start()
            for _ in range(m.warmup_calls + 1):
                m.call()
        samples[m.key]["peak_memory_bytes"] = None if peak.extra_bytes is None else m.weight_bytes + peak.extra_bytes
    for r in range(starts):
        for m in rotated(ms, r):
            out, seconds = timed(m.start, device)
            first = decoded(out[:, :1]) if decode and not m.decodes_itself else 0.0
            samples[m.key]["ttff_seconds"].append(seconds + first)
    for m in ms:
        for _ in range(m.warmup_calls):
            m.call()
    for r in range(rounds):
        for m in rotated(ms, r):
            burst, until = [], time.perf_counter() + burst_seconds
            while len(burst) < 2 or (time.perf_counter() < until and len(burst) < 100):
                out, seconds = timed(m.call, device)
                own = m.decodes_itself or decode is None
                burst.append((seconds, 0.0 if own else decoded(out) / m.frames_per_call))
            kept = burst[1:]  # the first call after another method's ran on cold caches
            samples[m.key]["call_seconds"] += [c for c, _ in kept]
            samples[m.key]["decode_seconds_per_frame"] += [d for _, d in kept]
            samples[m.key]["round_call_seconds"].append(statistics.median(c for c, _ in kept))
    for m in ms:
        s = samples[m.key]
        per_frame = [c / m.frames_per_call for c in s["call_seconds"]]
        step, dec = statistics.median(per_frame), statistics.median(s["decode_seconds_per_frame"])
        s.update(label=m.label, batch=m.batch, frames_per_call=m.frames_per_call,
                 ttff_p50=statistics.median(s["ttff_seconds"]), step_p50=step, step_p99=percentile(per_frame, 99))
        if m.decodes_itself:  # its calls are step + decode already; without decode it is the plain `aapt`
            s.update(fps_without_decode=None, fps_with_decode=1 / step)
        else:
            s.update(fps_without_decode=1 / step, fps_with_decode=None if decode is None else 1 / (step + dec))
    return samples


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a[r] / b[r]: each ratio taken between neighbours in time."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def cost_curve(model: CausalVideoDiT, latent_size: tuple[int, int], frames: int, device: torch.device) -> dict:
    """A long stream's time at frames 1..`frames`, each step next to a step of a young stream (frame ~40)."""
    old, controls = new_stream(model, latent_size, 1, 1, frames + 2)
    young, _ = new_stream(model, latent_size, 1, 1, frames + 2)
    for _ in range(YOUNG - 1):
        young.step(controls)
    at_40 = young.fork()
    long_times, young_times = [], []
    for f in range(frames):
        if f % SPAN == 0:
            young = at_40.fork()
        long_times.append(timed(lambda: old.step(controls), device)[1])
        young_times.append(timed(lambda y=young: y.step(controls), device)[1])

    def around(index: int) -> slice:  # frames index-10 .. index+10 (1-based), clipped to the run
        lo = max(0, min(index - 1 - SPAN // 2, frames - SPAN))
        return slice(lo, lo + SPAN)

    indices = [i for i in INDICES if i <= frames]
    return {"seconds_at_frame": {str(i): statistics.median(long_times[around(i)]) for i in indices},
            "ratio_to_frame40_at_frame": {str(i): paired_ratio(long_times[around(i)], young_times[around(i)])
                                          for i in indices},
            "long_stream_seconds": long_times, "young_stream_seconds": young_times}


def run(cfg: BackboneConfig, latent_size: tuple[int, int], device: torch.device, dtype: torch.dtype,
        frames: int = 1000, rounds: int = 30, starts: int = 5, batches: tuple[int, ...] = (1, 4, 16),
        only: tuple[str, ...] | None = None, fresh_processes: bool = True) -> dict:
    """The suite (see the module docstring); `fresh_processes=False` reads CPU peak memory in this process (quick,
    order-dependent)."""
    decode = decoder_for(cfg)
    max_frames = 4 * (rounds + starts + 64)
    only = tuple(METHODS if only is None else {"aapt", *only})
    model = build(cfg, device, dtype)  # every causal method and the cost curve stream this one network
    ms = methods(model, cfg, latent_size, device, dtype, batches, max_frames, decode, only)
    per = measure(ms, decode, device, rounds, starts)
    if device.type != "cuda" and fresh_processes:  # in one process, freed RSS is reused by the next method
        for m in ms:
            key, b = ("aapt_batch", (m.batch,)) if m.key.startswith("aapt_batch") else (m.key, (1,))
            per[m.key]["peak_memory_bytes"] = fresh_process_peak(cfg, latent_size, dtype, key, b, max_frames)
            per[m.key]["peak_memory_of"] = "process"
    aapt = per["aapt"]["round_call_seconds"]

    def vs(key: str) -> float | None:
        if key not in per:
            return None
        frames_per_call = per[key]["frames_per_call"]
        return paired_ratio([c / frames_per_call for c in per[key]["round_call_seconds"]], aapt)

    if "aapt_graph" in per:
        graph_speedup = {"speedup_graph_vs_eager": paired_ratio(aapt, per["aapt_graph"]["round_call_seconds"])}
    else:
        graph_speedup = {}
    curve = cost_curve(model, latent_size, frames, device)
    last = curve["ratio_to_frame40_at_frame"][str(max(int(i) for i in curve["seconds_at_frame"]))]
    return {"methods": per, "rounds": rounds, "starts": starts, **curve, **graph_speedup,
            "seconds_per_frame": per["aapt"]["step_p50"],
            "speedup_vs_no_cache": vs("no_cache"), "speedup_vs_4_steps": vs("four_steps"),
            "speedup_vs_chunk_bidirectional": vs("chunk_bidirectional"),
            "cost_ratio_frame1000_vs_frame40": last, "fps_without_decode": per["aapt"]["fps_without_decode"],
            "fps_with_decode": per["aapt"]["fps_with_decode"], "window_frames": cfg.window_frames,
            "sink_frames": cfg.sink_frames, "device": device.type,
            "tokens_per_frame": (latent_size[0] // cfg.patch_size) * (latent_size[1] // cfg.patch_size)}


def table(r: dict, cfg_name: str, latent_size: tuple[int, int]) -> str:
    ms = 1e3

    def mib(b: int | None) -> str:
        return "n/a" if b is None else f"{b / 2**20:.0f}"

    def fps(x: float | None, missing: str = "no decoder") -> str:
        return missing if x is None else f"{x:.3g}"

    lines = [f"{cfg_name}, latents {latent_size[0]}x{latent_size[1]} ({r['tokens_per_frame']} tokens per frame), "
             f"window {r['window_frames']} + sink {r['sink_frames']}; {r['rounds']} interleaved rounds, "
             f"{r['starts']} starts", ""]
    speedups = {"aapt": 1.0, "no_cache": r["speedup_vs_no_cache"], "four_steps": r["speedup_vs_4_steps"],
                "chunk_bidirectional": r["speedup_vs_chunk_bidirectional"]}
    lines += markdown_table(
        ("method", "time to first frame ms", "ms / frame p50", "p99", "frames/s", "with decode", "peak memory MiB",
         "AAPT is faster by"),
        ((m["label"], f"{ms * m['ttff_p50']:.1f}", f"{ms * m['step_p50']:.2f}", f"{ms * m['step_p99']:.2f}",
          fps(m["fps_without_decode"], "–"), fps(m["fps_with_decode"]), mib(m["peak_memory_bytes"]),
          f"{speedups[key]:.2f}x" if speedups.get(key) is not None else "–") for key, m in r["methods"].items()))
    if any(m.get("peak_memory_of") == "process" for m in r["methods"].values()):
        where = "the peak RSS of a fresh process per method"
    elif r["device"] == "cuda":
        where = "the method's weights + the GPU allocator's peak above what was held before it began"
    else:
        where = "the method's weights + this process's peak RSS growth (quick: order-dependent)"
    lines.append(f"\npeak memory: {where}")
    lines += ["", *markdown_table(("frame index", *r["seconds_at_frame"]), [
        ("ms (1 NFE, cached)", *(f"{ms * v:.2f}" for v in r["seconds_at_frame"].values())),
        ("/ frame 40, step for step", *(f"{v:.3f}" for v in r["ratio_to_frame40_at_frame"].values()))]),
              "", f"frame {max(int(i) for i in r['seconds_at_frame'])} / frame 40: "
              f"{r['cost_ratio_frame1000_vs_frame40']:.3f}"]
    if "speedup_graph_vs_eager" in r:
        lines[-1] += f"; CUDA graphs over the eager step: {r['speedup_graph_vs_eager']:.2f}x"
    return "\n".join(lines)
