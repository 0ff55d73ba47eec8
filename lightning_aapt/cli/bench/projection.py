"""Projection suite: what the `aapt-8b-like` preset costs per latent frame at 736x416, and what an H100's peak
implies against AAPT's reported 24 fps (one latent frame = 4 video frames, so 24 fps = 6 latent frames/s)."""

from __future__ import annotations

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.plan import forward_flops
from lightning_aapt.tables import markdown_table

H100_BF16_DENSE = 989e12  # FLOP/s, NVIDIA's H100 SXM datasheet (dense, no sparsity)
VIDEO_FRAMES_PER_LATENT = 4


def run(measured_mfu: float | None = None, latent_size: tuple[int, int] = (52, 92), fps: float = 24.0) -> dict:
    cfg = BackboneConfig.preset("aapt-8b-like")
    tokens = (latent_size[0] // cfg.patch_size) * (latent_size[1] // cfg.patch_size)
    window = cfg.visible_frames
    flops = forward_flops(cfg, tokens, 1, window, text_tokens=512, text_kv_cached=True)
    latent_fps_needed = fps / VIDEO_FRAMES_PER_LATENT
    out = {"flops_per_latent_frame": flops, "tokens_per_frame": tokens,
           "latent_fps_at_peak": H100_BF16_DENSE / flops,
           "video_fps_at_peak": VIDEO_FRAMES_PER_LATENT * H100_BF16_DENSE / flops,
           "mfu_needed_for_target": latent_fps_needed * flops / H100_BF16_DENSE, "target_video_fps": fps}
    if measured_mfu is not None:
        out["video_fps_at_measured_mfu"] = out["video_fps_at_peak"] * measured_mfu
        out["measured_mfu"] = measured_mfu
    return out


def table(r: dict) -> str:
    rows = [("tokens per latent frame", r["tokens_per_frame"]),
            ("FLOPs per latent frame (1 NFE)", f"{r['flops_per_latent_frame'] / 1e12:.1f} TFLOP"),
            ("video fps at 100% of 989 TFLOP/s (4 video frames per latent frame)", f"{r['video_fps_at_peak']:.1f}"),
            (f"utilisation needed for AAPT's {r['target_video_fps']:.0f} fps",
             f"{100 * r['mfu_needed_for_target']:.0f}%")]
    if "video_fps_at_measured_mfu" in r:
        rows.append((f"video fps at the MFU measured by the efficiency suite ({100 * r['measured_mfu']:.1f}%)",
                     f"{r['video_fps_at_measured_mfu']:.1f}"))
    return "\n".join(markdown_table(("aapt-8b-like at 736x416 (latents 52x92, window 30 + sink 1), one H100", "value"),
                                     rows))
