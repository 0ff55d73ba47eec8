"""Stage 2, `ConsistencyDistillation`: a causal student learns to jump to x0 in few steps (AAPT §2.2 (2)).

Discrete-time consistency distillation on a grid 0 = t_0 < ... < t_N = 1 (evenly spaced, then shifted; AAPT:
N = 32, s = 24), with teacher forcing (ground-truth recycled frames) and no classifier-free guidance (AAPT:
CFG caused artefacts autoregressively). For a clip, pick n and its noisy x_{t_n}; one Euler step of the frozen
teacher (the stage-1 model) gives x_{t_{n-1}}; the target is the consistency function of a target network at
that point, f(x, t) = x - t * v(x, t) (so f(x, 0) = x); the student's f(x_{t_n}, t_n) regresses onto it.
The target network is the student itself under stop-gradient (`target_ema_decay: 0`, AAPT's "improved"
recipe) or an EMA of it. Loss per frame: L2 or pseudo-Huber (iCT), no extra weighting.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.checkpoints import load_backbone
from lightning_aapt.data import VideoBatch
from lightning_aapt.diffusion import add_noise, euler_step, timestep_schedule, x0_from_velocity
from lightning_aapt.inference.teacher_forcing import teacher_forcing
from lightning_aapt.stages.averaging import averaged_copy, move_average
from lightning_aapt.stages.base import StageModule


class ConsistencyDistillation(StageModule):
    """Consistency distillation of the stage-1 model into a few-step causal generator.

    Args (beyond `StageModule`, whose settings it takes as they are, sampling with 4 steps by default):
        teacher_from: checkpoint of the frozen teacher (EMA weights); default `init_from` (the student
            starts from the teacher).
        grid_steps: N, intervals of the discretisation grid (AAPT: 32).
        target_ema_decay: EMA decay of the target network; 0 = stop-gradient of the current student (AAPT).
        loss: "l2" or "pseudo_huber".
        huber_c: pseudo-Huber c per latent element (iCT's 0.00054 * sqrt(d), divided by sqrt(d)).
        eval_steps: numbers of steps per frame whose streamed samples are scored in validation.
    """

    def __init__(self, backbone: BackboneConfig, teacher_from: str | None = None, grid_steps: int = 32,
                 target_ema_decay: float = 0.0, loss: Literal["l2", "pseudo_huber"] = "pseudo_huber",
                 huber_c: float = 0.00054, eval_steps: tuple[int, ...] = (1, 2, 4), sample_steps: int = 4,
                 **stage) -> None:
        super().__init__(backbone=backbone, sample_steps=sample_steps, **stage)
        init_from, attention_backend = self.init_from, self.attention_backend
        source = teacher_from or init_from
        if source is None:
            raise ValueError("stage 2 needs a teacher: set model.init_args.init_from (or teacher_from) to the "
                             "stage-1 checkpoint (python -m lightning_aapt fit --config experiments/stage1.yaml)")
        if loss not in ("l2", "pseudo_huber"):
            raise ValueError(f"model.init_args.loss must be 'l2' or 'pseudo_huber', got {loss!r}")
        flag = "teacher_from" if teacher_from else "init_from"
        self.teacher = load_backbone(source, attention_backend=attention_backend, flag=flag)
        self.teacher.requires_grad_(False).eval()
        if self.teacher.cfg != self.cfg:
            raise ValueError(f"teacher_from={source}: the teacher's config differs from the student's: "
                             f"{self.teacher.cfg} vs {self.cfg}")
        self.target = averaged_copy(self.model) if target_ema_decay > 0 else None
        self.grid_steps, self.target_ema_decay = grid_steps, target_ema_decay
        self.loss_kind, self.huber_c, self.eval_steps = loss, huber_c, tuple(eval_steps)

    def networks(self) -> list[torch.nn.Module]:
        return [*super().networks(), self.teacher, *([self.target] if self.target is not None else [])]

    def check_backbone(self, cfg: BackboneConfig) -> None:
        if cfg.bidirectional or not cfg.recycled_input:
            raise ValueError("stage 2 distils the causal form: set model.backbone.bidirectional=false and "
                             "model.backbone.recycled_input=true")

    def grid(self) -> Tensor:
        """t_0 = 0 < ... < t_N = 1: the sampler's N-step schedule (evenly spaced then shifted), ascending: (N + 1,)."""
        return timestep_schedule(self.grid_steps, self.timestep_cfg.shift, device=self.device).flip(0)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-frame distance (B, F) between consistency outputs (B, F, C, H, W)."""
        mse = (a.float() - b.float()).pow(2).flatten(2).mean(-1)
        if self.loss_kind == "l2":
            return mse
        return torch.sqrt(mse + self.huber_c**2) - self.huber_c

    def per_frame_losses(self, batch: VideoBatch, t: Tensor, noise: Tensor, model=None) -> Tensor:
        """`t` (B, F-1) is snapped to the grid point t_n at or above it; the pair is (t_n, t_{n-1}). `model` is the
        student (default the trained weights); the stop-gradient target is the same network."""
        student_net = model or self.model
        x0, recycled, controls = teacher_forcing(batch.latents, batch.controls)  # (B, F-1, C, H, W)
        text = batch.text
        grid = self.grid()
        n = torch.searchsorted(grid, t[:, :1].contiguous()).clamp(1, self.grid_steps)  # (B, 1)
        t_n = grid[n].expand_as(t)  # (B, F)
        t_prev = grid[n - 1].expand_as(t)
        x_n = add_noise(x0, noise, t_n)
        with torch.no_grad():
            x_prev = euler_step(x_n, self.teacher(x_n, t_n, recycled, text, controls), t_n, t_prev)
            target_net = self.target if self.target is not None else student_net
            v_prev = target_net(x_prev, t_prev, recycled, text, controls)
            target = x0_from_velocity(x_prev, v_prev, t_prev)  # f(x, 0) = x where t_prev = 0
        student = x0_from_velocity(x_n, student_net(x_n, t_n, recycled, text, controls), t_n)
        return self.distance(student, target)

    def update_averages(self) -> None:
        super().update_averages()
        if self.target is not None:
            move_average(self.target, self.model, 1 - self.target_ema_decay)

    def validation_step(self, batch: VideoBatch, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        for steps in self.eval_steps:
            self.log(f"val/stream_mse_{steps}step", self.stream_error(batch, batch_idx, steps).mean(),
                     batch_size=len(batch), sync_dist=True)
