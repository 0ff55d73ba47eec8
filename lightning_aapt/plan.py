"""Plan before you spend: parameters, FLOPs and memory of a configuration, computed, not measured.

Notation: D width, nh heads, hd head dim, H MLP hidden width, N tokens per latent frame, L text tokens,
F frames per training clip, W window frames (+ S sink frames), P parameters, G data-parallel GPUs.

FLOPs count multiply-adds as 2 and only useful work: the attention of a frame counts the keys its mask lets it
see (FlexAttention skips masked blocks; the CPU/SDPA path computes dense scores and does more). A training step
is forward + backward = 3x the forward (4x with activation checkpointing). Memory per GPU:
- weights, gradients and Adam moments: fp32 master weights (4 B/param) + fp32 gradients (4) + two fp32 moments
  (8) of the trained weights, and the EMA copy (4); frozen networks (stage 2's teacher, stage 3's distillation
  teacher) and a LoRA run's frozen base hold their weights only (4); FSDP divides all of it by G, DDP keeps it
  whole on every GPU;
- gathered weights: FSDP2 all-gathers one block at a time (bf16 or fp32), about two blocks in flight;
- activations: per token and block about 34 D bytes in 16-bit (Korthikanti et al. 2022, with fused attention
  kernels that keep no score matrix); with activation checkpointing only each block's input (2 D bytes)
  plus one block's full activations. An estimate: real numbers vary by +-30% with kernels and fragmentation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch

from lightning_aapt.adversarial.rollout import rollout_lengths
from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT
from lightning_aapt.backbone.attention import frame_visible
from lightning_aapt.backbone.lora import LoraConfig, named_like
from lightning_aapt.tables import markdown_table


def parameter_count(cfg: BackboneConfig) -> int:
    """Exact: the model built on the meta device (no memory) and counted."""
    with torch.device("meta"):
        return sum(p.numel() for p in CausalVideoDiT(cfg).parameters())


def trainable_parameters(cfg: BackboneConfig, lora: LoraConfig | None) -> int:
    """Parameters a stage trains: all of them, or with LoRA the adapters (r (in + out) per target linear layer)
    and the modules trained whole."""
    if lora is None:
        return parameter_count(cfg)
    with torch.device("meta"):
        model = CausalVideoDiT(cfg)
    count = 0
    for name, module in model.named_modules():
        if any(named_like(name, m) for m in lora.trained_fully):
            count += sum(p.numel() for p in module.parameters())
        elif isinstance(module, torch.nn.Linear) and any(named_like(name, t) for t in lora.targets):
            count += lora.rank * (module.in_features + module.out_features)
    return count


def block_parameters(cfg: BackboneConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in CausalVideoDiT(cfg.replace(depth=1)).blocks[0].parameters())


def forward_flops(cfg: BackboneConfig, tokens: int, query_frames: int, visible_keys: float,
                  text_tokens: int, text_kv_cached: bool = False) -> float:
    """FLOPs of one forward over `query_frames` frames of `tokens` tokens, each attending to `visible_keys`
    key frames on average and to `text_tokens` text tokens; the text embedding and K/V are computed unless
    `text_kv_cached` (streaming: once per prompt)."""
    D, H, q = cfg.dim, cfg.hidden_dim, query_frames * tokens
    qk_width = cfg.head_dim + (cfg.rope_split[0] if cfg.uses_sink_positions else 0)  # window-local RoPE channels
    linear = 2 * q * (3 * D * D + D * D + D * D + D * D + 2 * D * H)  # qkv, proj, cross q, cross proj, MLP
    text_kv = 0 if text_kv_cached else 2 * text_tokens * D * 2 * D
    self_attn = 2 * q * visible_keys * tokens * cfg.num_heads * (qk_width + cfg.head_dim)
    cross_attn = 2 * q * text_tokens * 2 * D
    per_block = linear + text_kv + self_attn + cross_attn
    io = 2 * q * cfg.patch_dim * D * (3 if cfg.recycled_input else 2)  # patch, recycled embeddings and head
    if not text_kv_cached:
        io += 2 * text_tokens * (cfg.text_dim * D + D * D)  # text embedding
    return cfg.depth * per_block + io


def average_visible(frames: int, cfg: BackboneConfig) -> float:
    """Mean number of key frames a frame of a causal clip of `frames` frames sees under the mask rule
    (`backbone.attention.frame_visible`)."""
    if cfg.bidirectional:
        return float(frames)
    f = torch.arange(frames)
    visible = frame_visible(f[:, None], f[None, :], cfg.window_frames, f[None, :] < cfg.sink_frames)
    return visible.sum().item() / frames


@dataclass(frozen=True)
class Workload:
    """What a run does per GPU.

    Args:
        latent_size: (h, w) of a latent frame.
        frames: latent frames per training clip.
        batch_per_gpu: clips per GPU per step.
        text_tokens: L.
        gpus: data-parallel GPUs (G).
        sharding: "fsdp" (FSDP2: weights, gradients, optimizer and EMA divided by G) or "ddp" (replicated).
        precision: "bf16" (compute and gathered weights in bf16, fp32 master weights) or "fp32".
        activation_checkpointing: recompute activations in backward.
        stage: 1 (teacher forcing, one pass), 2 (consistency distillation: the frozen teacher's and the target's
            passes without gradients, the student's with) or 3 (adversarial: generator + discriminator of the same
            size).
        rollout_frames: stage 3's generated video length, its first real frame included (`rollout.frames`;
            default: the clip, at least one segment: `adversarial.rollout.rollout_lengths`, as the stage).
        segment_frames: stage 3's judged segment length (`rollout.segment_frames`; default: the clip).
        frozen_networks: frozen copies of the backbone held beside the trained ones (stage 2's teacher, and its
            EMA target; stage 3's distillation teacher).
        lora: the generator trains LoRA adapters (`backbone/lora.py`) instead of all its weights.
    """

    latent_size: tuple[int, int] = (52, 92)
    frames: int = 30
    batch_per_gpu: int = 1
    text_tokens: int = 512
    gpus: int = 8
    sharding: Literal["fsdp", "ddp"] = "fsdp"
    precision: Literal["bf16", "fp32"] = "bf16"
    activation_checkpointing: bool = True
    stage: Literal[1, 2, 3] = 1
    rollout_frames: int | None = None
    segment_frames: int | None = None
    frozen_networks: int = 0
    lora: LoraConfig | None = None


def plan(cfg: BackboneConfig, work: Workload) -> dict[str, float]:
    """Parameters, FLOPs per training step / per generated frame, memory per GPU (bytes) of `cfg` under `work`."""
    tokens = (work.latent_size[0] // cfg.patch_size) * (work.latent_size[1] // cfg.patch_size)
    params = parameter_count(cfg)
    F, B, L = work.frames, work.batch_per_gpu, work.text_tokens
    clip = forward_flops(cfg, tokens, F, average_visible(F, cfg), L)
    steady = cfg.visible_frames or F
    per_frame = forward_flops(cfg, tokens, 1, steady, L, text_kv_cached=True) if not cfg.bidirectional else clip / F
    backward = 3 if work.activation_checkpointing else 2  # recompute = one more forward
    if work.stage == 1:
        step = B * clip * (1 + backward)
        networks = 1
    elif work.stage == 2:  # teacher and target forwards without gradients, the student's with
        step = B * clip * (2 + 1 + backward)
        networks = 1
    else:
        R = rollout_lengths(F, work.rollout_frames, work.segment_frames)[1]
        video = forward_flops(cfg, tokens, R, average_visible(R, cfg), L)
        rollout = R * per_frame  # no-grad streaming, 1 NFE per frame
        disc = 4 * clip * (1 + backward)  # real, fake and their two perturbed (R1/R2) passes, back-propagated
        gen = video * (1 + backward) + (R / F) * clip * (1 + backward) + clip  # regenerate + judge + real
        step = B * (rollout + disc + gen)
        networks = 2
    shards = work.gpus if work.sharding == "fsdp" else 1
    trained = trainable_parameters(cfg, work.lora)  # of the generator; stage 3's discriminator trains whole
    weights = params * (networks + work.frozen_networks)  # fp32 master weights of every network
    # + gradients and Adam moments of what trains, + the EMA of the generator's trained weights
    state = (weights * 4 + (trained + (networks - 1) * params) * (4 + 8) + trained * 4) / shards
    compute_bytes = 2 if work.precision == "bf16" else 4
    gathered = 2 * block_parameters(cfg) * compute_bytes if work.sharding == "fsdp" else 0
    seq = B * F * tokens
    per_token_block = 34 * cfg.dim * compute_bytes / 2
    if work.activation_checkpointing:
        activations = seq * cfg.depth * cfg.dim * compute_bytes + seq * per_token_block
    else:
        activations = seq * cfg.depth * per_token_block
    activations *= networks if work.stage == 3 else 1
    if work.stage == 3:  # the rollout's KV cache: 2 (K, V) x depth x frames in window x tokens x D
        activations += 2 * cfg.depth * steady * tokens * cfg.dim * compute_bytes * B
    return {"parameters": params, "trained_parameters": trained + (networks - 1) * params,
            "tokens_per_frame": tokens, "flops_per_training_step": step,
            "flops_per_generated_frame": per_frame, "memory_states": state, "memory_gathered_weights": gathered,
            "memory_activations": activations, "memory_total": state + gathered + activations,
            "kv_cache_bytes_per_stream": 2 * cfg.depth * steady * tokens * cfg.dim * compute_bytes}


def report(name: str, cfg: BackboneConfig, work: Workload, gpu_memory_gib: float = 80.0) -> str:
    """A Markdown summary of `plan`."""
    p = plan(cfg, work)
    gib = 2**30
    fits = p["memory_total"] / gib <= 0.9 * gpu_memory_gib
    fields = ", ".join(f"{f.name}={getattr(work, f.name)}" for f in dataclasses.fields(work) if f.name != "lora")
    if work.lora is not None:
        fields += f", LoRA rank {work.lora.rank} on {', '.join(work.lora.targets)}"
    lines = [f"### plan: {name}", "", f"{cfg.depth} blocks, width {cfg.dim}, {cfg.num_heads} heads, MLP "
             f"{cfg.hidden_dim}, window {cfg.window_frames} + sink {cfg.sink_frames}; {fields}", ""]
    lines += markdown_table(("quantity", "value"), [
        ("parameters", count(p["parameters"])),
        (f"trained parameters{' (LoRA)' if work.lora else ''}", count(p["trained_parameters"])),
        ("tokens per latent frame", p["tokens_per_frame"]),
        ("FLOPs per training step (per GPU)", f"{p['flops_per_training_step'] / 1e12:.1f} TFLOP"),
        ("FLOPs per generated latent frame (1 NFE, window full)", f"{p['flops_per_generated_frame'] / 1e12:.2f} TFLOP"),
        ("memory: weights, grads, Adam, EMA", f"{p['memory_states'] / gib:.1f} GiB"),
        ("memory: gathered weights (FSDP)", f"{p['memory_gathered_weights'] / gib:.2f} GiB"),
        ("memory: activations (estimate)", f"{p['memory_activations'] / gib:.1f} GiB"),
        ("memory per GPU, total", f"{p['memory_total'] / gib:.1f} GiB of {gpu_memory_gib:.0f} GiB: "
                                  f"{'fits' if fits else 'does NOT fit'} (90% budget)"),
        ("KV cache per stream (inference)", f"{p['kv_cache_bytes_per_stream'] / 2**20:.0f} MiB")])
    return "\n".join(lines)


def count(n: int) -> str:
    """A parameter count in the unit that reads: 8.031 B, 1.22 M, 850 k."""
    return f"{n / 1e9:.3f} B" if n >= 1e9 else f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"
