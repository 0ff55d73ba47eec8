"""Training suite: latent frames per second of a stage-1 and a stage-3 step (toy shapes of the quick start), and
what Lightning costs on top of a bare PyTorch loop running the same stage-1 step (same module, same math)."""

from __future__ import annotations

import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.cli.bench.timing import synchronize
from lightning_aapt.data import VideoBatch
from lightning_aapt.stages import AdversarialPostTraining, DiffusionAdaptation
from lightning_aapt.stages.adversarial_config import RolloutConfig
from lightning_aapt.stages.randomness import RandomStream
from lightning_aapt.tables import markdown_table

DIMS = {"latent_channels": 48, "text_dim": 64, "control_dim": 2}


def toy_batch(batch: int, frames: int, latent_size: tuple[int, int]) -> VideoBatch:
    gen = torch.Generator().manual_seed(0)
    return VideoBatch(torch.randn(batch, frames, 48, *latent_size, generator=gen),
                      torch.randn(batch, 24, 64, generator=gen), torch.rand(batch, frames, 2, generator=gen) * 2 - 1)


class Repeat(IterableDataset):
    def __init__(self, batch: VideoBatch, count: int) -> None:
        self.batch, self.count = batch, count

    def __iter__(self):
        return (self.batch for _ in range(self.count))


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        synchronize(module.device)
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        synchronize(module.device)
        self.times.append(time.perf_counter() - self.start)


def lightning_step_seconds(module: L.LightningModule, batch: VideoBatch, steps: int, device: torch.device,
                           max_steps: int | None = None) -> float:
    timer = StepTimer()
    trainer = L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                        max_steps=max_steps or steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=[timer])
    trainer.fit(module, DataLoader(Repeat(batch, steps), batch_size=None))
    return statistics.median(timer.times[2:] or timer.times)  # the first steps build kernels and optimizer state


def bare_step_seconds(module: DiffusionAdaptation, batch: VideoBatch, steps: int, device: torch.device) -> float:
    module = module.to(device)
    batch = VideoBatch(batch.latents.to(device), batch.text.to(device), batch.controls.to(device))
    optimizer = module.configure_optimizers()["optimizer"]
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        B, F = batch.latents.shape[:2]
        trained = module.trained_frames(F)  # the same draws as StageModule.training_step
        t = module.draw_timesteps(B, trained)
        noise = module.sample_randn((B, trained, *batch.latents.shape[2:]), RandomStream.NOISE)
        module.per_frame_losses(batch, t, noise).mean().backward()
        torch.nn.utils.clip_grad_norm_(module.model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        module.update_averages()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:] or times)


def run(device: torch.device, batch: int = 8, frames: int = 8, latent_size: tuple[int, int] = (8, 8),
        steps: int = 12) -> dict:
    cfg = BackboneConfig.preset("toy")
    data = toy_batch(batch, frames, latent_size)
    torch.manual_seed(0)
    bare = bare_step_seconds(DiffusionAdaptation(cfg, model_dims=DIMS), data, steps, device)
    torch.manual_seed(0)
    stage1 = lightning_step_seconds(DiffusionAdaptation(cfg, model_dims=DIMS), data, steps, device)
    torch.manual_seed(0)
    rollout = 2 * frames
    gan = AdversarialPostTraining(cfg, model_dims=DIMS, rollout=RolloutConfig(frames=rollout))
    stage3 = lightning_step_seconds(gan, data, steps // 2 + 2, device, max_steps=2 * (steps // 2 + 2))
    return {"stage1_seconds_per_step": stage1, "stage1_frames_per_second": batch * frames / stage1,
            "bare_seconds_per_step": bare, "lightning_overhead": stage1 / bare - 1,
            "stage3_seconds_per_step": stage3, "stage3_frames_per_second": batch * rollout / stage3,
            "batch": batch, "frames": frames, "rollout_frames": rollout}


def table(r: dict) -> str:
    return "\n".join([*markdown_table(
        (f"toy preset, batch {r['batch']} x {r['frames']} frames", "s / step", "latent frames / s"),
        [("stage 1 step, bare PyTorch loop", f"{r['bare_seconds_per_step']:.3f}",
          f"{r['batch'] * r['frames'] / r['bare_seconds_per_step']:.0f}"),
         ("stage 1 step, Lightning", f"{r['stage1_seconds_per_step']:.3f}", f"{r['stage1_frames_per_second']:.0f}"),
         (f"stage 3 step (G + D, {r['rollout_frames']}-frame rollouts), Lightning",
          f"{r['stage3_seconds_per_step']:.3f}", f"{r['stage3_frames_per_second']:.0f} (generated)")]), "",
        f"Lightning overhead on the stage-1 step: {100 * r['lightning_overhead']:+.1f}% (same module, same math; "
        "Lightning adds logging, hooks and the loop)"])
