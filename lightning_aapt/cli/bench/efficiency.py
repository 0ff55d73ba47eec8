"""Efficiency suite: model FLOPs per streamed frame (analytic, `lightning_aapt.plan`) / measured time, against the
matmul FLOP/s this device reaches in the same run: the model FLOP utilisation (MFU) of the 1-NFE generator; on a
listed GPU in bf16 also against the data sheet's dense peak (the figure papers quote)."""

from __future__ import annotations

import statistics

import torch

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.cli.bench.streaming import build, frame_times
from lightning_aapt.cli.bench.timing import datasheet_peak, matmul_peak
from lightning_aapt.plan import forward_flops
from lightning_aapt.tables import markdown_table


def run(cfg: BackboneConfig, latent_size: tuple[int, int], device: torch.device, dtype: torch.dtype,
        frames: int = 60) -> dict:
    model = build(cfg, device, dtype)
    frame_times(model, latent_size, 8, 1, device)  # warm-up
    window = cfg.visible_frames or 8
    times = frame_times(model, latent_size, max(frames, window + 20), 1, device)[window + 2 :]
    seconds = statistics.median(times)
    tokens = (latent_size[0] // cfg.patch_size) * (latent_size[1] // cfg.patch_size)
    visible = window if cfg.window_frames else len(times)
    flops = forward_flops(cfg, tokens, 1, visible, text_tokens=16, text_kv_cached=True)
    peak = matmul_peak(device, dtype)
    sheet = datasheet_peak(device, dtype)
    return {"flops_per_frame": flops, "seconds_per_frame": seconds, "achieved_flops": flops / seconds,
            "peak_matmul_flops": peak, "mfu": flops / seconds / peak, "dtype": str(dtype).removeprefix("torch."),
            "datasheet_peak_flops": sheet, "mfu_of_datasheet_peak": None if sheet is None else flops / seconds / sheet}


def table(r: dict, cfg_name: str, latent_size: tuple[int, int]) -> str:
    rows = [("model FLOPs per streamed frame (analytic)", f"{r['flops_per_frame'] / 1e9:.2f} GFLOP"),
            ("time per frame (window full)", f"{1e3 * r['seconds_per_frame']:.2f} ms"),
            ("achieved", f"{r['achieved_flops'] / 1e9:.1f} GFLOP/s"),
            ("peak matmul, measured now", f"{r['peak_matmul_flops'] / 1e9:.1f} GFLOP/s"),
            ("MFU", f"{100 * r['mfu']:.1f}%")]
    if r["datasheet_peak_flops"]:
        rows.append((f"MFU of the data sheet's dense bf16 peak ({r['datasheet_peak_flops'] / 1e12:.0f} TFLOP/s)",
                     f"{100 * r['mfu_of_datasheet_peak']:.1f}%"))
    return "\n".join(markdown_table((f"{cfg_name}, latents {latent_size[0]}x{latent_size[1]}, {r['dtype']}",
                                      "value"), rows))
