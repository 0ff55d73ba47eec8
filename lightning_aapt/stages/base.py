"""`StageModule`: what every training stage shares — the backbone and its EMA, `init_from`, the optimizer
(`optim.py`), seeded randomness (`randomness.py`), per-timestep-bucket loss logging, a deterministic validation
loss, and sampling for evaluation (`sampling.py`).

Notation: B batch, F frames, C latent channels, H/W latent height/width.
"""

from __future__ import annotations

import dataclasses
import os

import lightning as L
import torch
from torch import Tensor

from lightning_aapt.backbone import AttentionBackend, BackboneConfig, CausalVideoDiT
from lightning_aapt.backbone.lora import LoraConfig, add_lora
from lightning_aapt.checkpoints import check_backbone, check_stage, init_backbone_from
from lightning_aapt.data import VideoBatch
from lightning_aapt.diffusion import sample_timesteps
from lightning_aapt.errors import CheckpointError, ConfigError
from lightning_aapt.inference import stream_after_context
from lightning_aapt.inference.clips import sample_clips, sampling_protocol
from lightning_aapt.inference.teacher_forcing import next_frame_errors
from lightning_aapt.parallel import ParallelConfig, parallelize
from lightning_aapt.stages.averaging import averaged_copy, move_average
from lightning_aapt.stages.optim import OptimizerConfig, adamw, lr_factor
from lightning_aapt.stages.randomness import RandomStream, TimestepConfig, sample_generators


def check_resumed_weights(state: dict | None, ours, where: str) -> None:
    """Refuse resuming from weights that are not this model's (a key it lacks or does not have) or that hold NaN or
    infinite values (a diverged run), naming them; a sharded checkpoint (no plain state dict here) is checked as its
    shards load."""
    if not isinstance(state, dict):
        return
    ours, saved = set(ours), set(state)
    extra, missing = sorted(saved - ours), sorted(ours - saved)
    if extra or missing:
        raise CheckpointError(f"{where}: its weights are not this model's: {len(extra)} it does not have "
                              f"({', '.join(extra[:3])}), {len(missing)} missing ({', '.join(missing[:3])})")
    bad = [key for key, value in state.items() if type(value) is Tensor and value.is_floating_point()
           and not bool(torch.isfinite(value).all())]
    if bad:
        raise CheckpointError(f"{where}: its weights hold NaN or infinite values ({', '.join(bad[:3])}): the run "
                              "diverged before this checkpoint; resume from an earlier one")


class StageModule(L.LightningModule):
    """Base of the stage modules: owns `model` (the trained backbone) and `ema` (its moving average).

    Args:
        backbone: the backbone's configuration. Its `latent_channels`, `text_dim` and `control_dim` are
            set from the data when the CLI links `model_dims`.
        optimizer: AdamW settings.
        timesteps: training timestep distribution.
        ema_decay: EMA decay (with the usual warm-up min(decay, (1 + step) / (10 + step))); 0 disables EMA.
        init_from: stage checkpoint whose backbone (EMA weights when present) initialises `model`.
        model_dims: linked from the data module by the CLI (latent_channels, text_dim, control_dim).
        loss_buckets: training loss is also logged per timestep bucket, this many equal buckets of [0, 1].
        sample_steps: Euler steps per frame (per clip, bidirectional) when `predict` generates samples.
        parallel: sharding (FSDP2 under ModelParallelStrategy), mixed precision, activation checkpointing and
            compilation of the stage's networks (`lightning_aapt.parallel`).
        context_frames: real frames a causal stage's evaluation streams start from (fed through the cache); two
            show the model how things move, which one frame cannot.
        attention_backend: how the stage's networks run attention ("auto", "sdpa", "flex", "reference"): a run
            setting, not part of the architecture, so it may change on resume.
        lora: train low-rank adapters of `model` (after `init_from`) instead of all its weights (`lora.py`): the
            base stays frozen and is shared with the EMA, checkpoints record the adapters' settings, and every
            reader of the checkpoint (`init_from`, `eval`, `sample`, `merge`) sees the merged plain backbone. One
            device or DDP (not ModelParallelStrategy).
    """

    def __init__(self, backbone: BackboneConfig, optimizer: OptimizerConfig | None = None,
                 timesteps: TimestepConfig | None = None, ema_decay: float = 0.999, init_from: str | None = None,
                 model_dims: dict[str, int] | None = None, loss_buckets: int = 4, sample_steps: int = 8,
                 parallel: ParallelConfig | None = None, context_frames: int = 2,
                 attention_backend: AttentionBackend = "auto", lora: LoraConfig | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name, value in self.hparams.items():  # plain data, so checkpoints load with weights_only=True
            if dataclasses.is_dataclass(value):
                self.hparams[name] = dataclasses.asdict(value)
        if model_dims:
            backbone = dataclasses.replace(backbone, **model_dims)
        self.check_backbone(backbone)
        self.cfg = backbone
        self.optimizer_cfg = optimizer or OptimizerConfig()
        self.optimizer_cfg.check("model.init_args.optimizer")
        self.timestep_cfg = timesteps or TimestepConfig()
        self.ema_decay, self.init_from, self.loss_buckets = ema_decay, init_from, loss_buckets
        self.sample_steps = sample_steps
        if context_frames < 1:
            raise ValueError(f"model.init_args.context_frames must be >= 1 (the first frame), got {context_frames}")
        self.context_frames = context_frames
        self.parallel_cfg = parallel or ParallelConfig()
        self._parallelized = False
        self.attention_backend = attention_backend
        self.model = CausalVideoDiT(backbone, attention_backend)
        if init_from:
            init_backbone_from(self.model, init_from)
        self.lora = lora
        if lora is not None:
            add_lora(self.model, lora)
        self.ema = averaged_copy(self.model) if ema_decay > 0 else None

    def check_backbone(self, cfg: BackboneConfig) -> None:
        """Stages refuse a backbone form they cannot train (overridden per stage)."""

    def check_clip_frames(self, num_frames: int) -> None:
        """Refuse, by key, a clip length (data.num_frames) this stage cannot train; checked before `fit` starts."""
        if self.trained_frames(num_frames) < 1:
            raise ConfigError(f"data.init_args.num_frames={num_frames}: {type(self).__name__} trains frames 1..F-1 of "
                              "each clip, after the real frame 0 (teacher forcing); give at least 2")

    def networks(self) -> list[torch.nn.Module]:
        """Every network the stage runs (sharded and switched by `parallel`); stages add theirs."""
        return [m for m in (self.model, self.ema) if m is not None]

    def configure_model(self) -> None:
        """Apply `parallel` (FSDP2 when the strategy gives a device mesh) once, before the optimizers exist."""
        if not self._parallelized:
            if self.lora is not None and self.device_mesh is not None:
                raise ValueError("model.init_args.lora trains on one device or under DDP (its frozen base is shared "
                                 "with the EMA); ModelParallelStrategy (FSDP2) shards full training only")
            parallelize(self.networks(), self.device_mesh, self.parallel_cfg)
            self._parallelized = True

    # ------------------------------------------------------------------------------ randomness

    def sample_generators(self, batch: int, stream: int) -> list[torch.Generator]:
        """One generator per sample of this rank's batch, seeded by (seed, step, stream, global sample index).

        Training noise and timesteps come from these, not from the global RNG: a sample's randomness depends
        only on the run's seed, the step and the sample's place in the global batch (rank r holds places
        r*B .. r*B+B-1). So N ranks of batch B draw exactly what 1 rank of batch N*B draws, and a resumed run
        draws what the uninterrupted one did without restoring any RNG state.
        """
        return sample_generators(int(os.environ.get("PL_GLOBAL_SEED", 0)), self.global_step, stream,
                                 self.global_rank * batch, batch, self.device)

    def sample_randn(self, shape: tuple[int, ...], stream: int, dtype: torch.dtype | None = None) -> Tensor:
        """Standard normal (B, ...) from `sample_generators`."""
        return torch.stack([torch.randn(shape[1:], generator=g, device=self.device, dtype=dtype)
                            for g in self.sample_generators(shape[0], stream)])

    def sample_rand(self, batch: int, stream: int) -> Tensor:
        """Uniform [0, 1) (B,) from `sample_generators`."""
        generators = self.sample_generators(batch, stream)
        return torch.cat([torch.rand(1, generator=g, device=self.device) for g in generators])

    def draw_timesteps(self, batch: int, frames: int) -> Tensor:
        """Training timesteps (B, F), drawn per sample (see `sample_generators`)."""
        t = self.timestep_cfg
        return torch.cat([sample_timesteps(1, frames, per=t.per, distribution=t.distribution, shift=t.shift,
                                           device=self.device, generator=g)
                          for g in self.sample_generators(batch, RandomStream.TIMESTEPS)])

    # -------------------------------------------------------------------------------- training

    def log_losses(self, split: str, per_frame: Tensor, t: Tensor, batch_size: int) -> Tensor:
        """Log the mean loss and, for training, its mean per timestep bucket; per_frame/t (B, F)."""
        loss = per_frame.mean()
        # Synced in training too: the logged loss is the global batch's, whatever the number of ranks.
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=batch_size, sync_dist=True)
        if split == "train":
            bucket = (t.detach() * self.loss_buckets).long().clamp(max=self.loss_buckets - 1)  # (B, F)
            for k in range(self.loss_buckets):
                chosen = bucket == k
                if chosen.any():
                    name = f"train/loss_t{k / self.loss_buckets:.2f}-{(k + 1) / self.loss_buckets:.2f}"
                    self.log(name, per_frame.detach()[chosen].mean(), batch_size=int(chosen.sum()))
        return loss

    def trained_frames(self, num_frames: int) -> int:
        """Positions a clip of `num_frames` frames trains: all of them for a bidirectional model, F - 1 for a causal
        one (teacher forcing: frame 0 is only recycled, `teacher_forcing.py`)."""
        return num_frames if self.cfg.bidirectional else num_frames - 1

    def per_frame_losses(self, batch: VideoBatch, t: Tensor, noise: Tensor,
                         model: torch.nn.Module | None = None) -> Tensor:
        """The stage's flow-matching loss (B, F') of a batch at timesteps t (B, F') with noise (B, F', C, H, W),
        F' = `trained_frames(F)`, for `model` (default the trained weights)."""
        raise NotImplementedError

    def training_step(self, batch: VideoBatch, batch_idx: int) -> Tensor:
        B, F = batch.latents.shape[:2]
        trained = self.trained_frames(F)
        t = self.draw_timesteps(B, trained)
        noise = self.sample_randn((B, trained, *batch.latents.shape[2:]), RandomStream.NOISE, batch.latents.dtype)
        losses = self.per_frame_losses(batch, t, noise)
        loss = self.log_losses("train", losses, t, B)
        if not self.finite_on_every_rank(loss):  # a non-finite step would poison the weights and the EMA alike
            raise FloatingPointError(f"step {self.global_step}: the training loss is {loss.item()}; stopped before "
                                     "its optimizer step, so the weights and checkpoints are those before it: lower "
                                     "model.init_args.optimizer.lr (or check the data for extreme values)")
        return loss

    def finite_on_every_rank(self, loss: Tensor) -> bool:
        """Whether `loss` is finite on every rank (the strategy's boolean all-reduce; a host sync). Ranks must agree to
        step or to stop (or skip): one that stops alone leaves the others waiting in a collective, one that skips
        alone parts its weights from theirs."""
        finite = bool(torch.isfinite(loss.detach()).item())
        return self.trainer.strategy.reduce_boolean_decision(finite, all=True)

    def evaluate(self, split: str, batch: VideoBatch, batch_idx: int) -> None:
        """Loss at fixed noise and one fixed t per clip, so numbers compare across runs and steps: `<split>/loss`
        of the weights that are sampled and handed to the next stage (the EMA when there is one) and
        `<split>/loss_raw` of the trained weights. Causal stages also log `<split>/next_frame_mse`, the latent MSE
        of the one-step (t = 1) teacher-forced next-frame prediction, beside `<split>/copy_mse`, that of copying
        the previous frame: a model that has learned no dynamics does not beat the copy."""
        B, F = batch.latents.shape[:2]
        trained = self.trained_frames(F)
        gen = self.validation_generator(batch_idx)
        t = torch.rand(B, 1, generator=gen, device=self.device).expand(B, trained)
        noise = torch.randn((B, trained, *batch.latents.shape[2:]), generator=gen, device=self.device)
        self.log_losses(split, self.per_frame_losses(batch, t, noise, self.sampling_model), t, B)
        if self.ema is not None:
            raw = self.per_frame_losses(batch, t, noise, self.model).mean()
            self.log(f"{split}/loss_raw", raw, batch_size=B, sync_dist=True)
        if not self.cfg.bidirectional:
            self.log_next_frame_errors(split, batch, noise)

    def log_next_frame_errors(self, split: str, batch: VideoBatch, noise: Tensor) -> None:
        """What the 1-NFE generator does, teacher-forced, against copying: `<split>/next_frame_mse` and
        `<split>/copy_mse` of the sampling weights, with `noise` (B, F-1, C, H, W)."""
        error, copy = next_frame_errors(self.sampling_model, batch.latents, batch.text, batch.controls, noise)
        self.log_dict({f"{split}/next_frame_mse": error.mean(), f"{split}/copy_mse": copy.mean()},
                      batch_size=len(batch), sync_dist=True)

    def validation_step(self, batch: VideoBatch, batch_idx: int) -> None:
        self.evaluate("val", batch, batch_idx)

    def test_step(self, batch: VideoBatch, batch_idx: int) -> None:
        self.evaluate("test", batch, batch_idx)

    def stream_error(self, batch: VideoBatch, batch_idx: int, steps: int) -> Tensor:
        """Per-frame latent MSE (B, F-K) of `stream_after_context` against the real clip."""
        K = self.context_frames
        frames = stream_after_context(self.sampling_model, batch.text, batch.latents[:, :K], batch.controls,
                                      batch.latents.shape[1], steps, self.timestep_cfg.shift, batch_idx)
        return (frames.float() - batch.latents[:, K:].float()).pow(2).flatten(2).mean(-1)

    def sampling_protocol(self) -> dict:
        """How `predict_step` samples, for the protocol recorded beside a generated-vs-real number."""
        return sampling_protocol(self.sampling_model, self.sample_steps, self.context_frames, self.ema is not None)

    @property
    def sampling_model(self) -> CausalVideoDiT:
        """The weights to sample with: the EMA when there is one."""
        return self.ema if self.ema is not None else self.model

    def predict_step(self, batch: VideoBatch, batch_idx: int) -> dict:
        """Generate clips for the batch's text and controls with the sampling weights, `sample_steps` Euler steps
        (`sampling.sample_clips`): {"keys", "latents" (B, F, C, H, W)}."""
        latents = sample_clips(self.sampling_model, batch, self.context_frames, self.sample_steps,
                               self.timestep_cfg.shift, seed=batch_idx)
        return {"keys": batch.keys, "latents": latents}

    def update_averages(self) -> None:
        """EMA of the trained weights, after each of their optimizer steps. Updated here rather than at batch end,
        so a checkpoint written by a callback's `on_train_batch_end` (which runs before the module's) holds the
        EMA of exactly the weights it holds. Sharded weights average shard by shard."""
        if self.ema is not None:
            step = self.averaged_steps()
            decay = min(self.ema_decay, (1 + step) / (10 + step))
            move_average(self.ema, self.model, 1 - decay)

    def averaged_steps(self) -> int:
        """Updates of the averaged weights so far (the EMA warm-up's step)."""
        return self.global_step

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        self.update_averages()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if getattr(batch, "skipped", 0):
            self.log("train/skipped_samples", float(batch.skipped), reduce_fx="sum", batch_size=1)

    def validation_generator(self, batch_idx: int) -> torch.Generator:
        """Fixed noise per validation batch, so validation losses compare across runs and steps."""
        return torch.Generator(device=self.device).manual_seed(10_000 + batch_idx)

    # ------------------------------------------------------------------------------ optimizers

    def configure_optimizers(self):
        cfg = self.optimizer_cfg
        optimizer = adamw(self.model.named_parameters(), cfg)
        if cfg.cooldown_steps < 0:
            raise ValueError(f"model.init_args.optimizer.cooldown_steps must be >= 0, got {cfg.cooldown_steps}")
        if cfg.cooldown_steps > 0 and self.trainer.max_steps < cfg.cooldown_steps:
            raise ValueError(f"model.init_args.optimizer.cooldown_steps={cfg.cooldown_steps} ends the cool-down at "
                             f"trainer.max_steps={self.trainer.max_steps}: set max_steps >= cooldown_steps")
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.lr_factor(step))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def lr_factor(self, step: int) -> float:
        """The learning rate at optimizer step `step`, as a fraction of `lr` (`optim.lr_factor`)."""
        cfg = self.optimizer_cfg
        return lr_factor(step, cfg, self.trainer.max_steps if cfg.cooldown_steps > 0 else None)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["stage"] = type(self).__name__
        checkpoint["backbone_config"] = dataclasses.asdict(self.cfg)
        checkpoint["lora"] = dataclasses.asdict(self.lora) if self.lora is not None else None
        shapes = getattr(getattr(self.trainer, "datamodule", None), "shapes", None) if self._trainer else None
        if shapes is not None:  # what `play`, `sample` and `eval` compare with the data they stream on
            checkpoint["latent_size"] = [shapes.height, shapes.width]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming from a checkpoint of another stage, backbone or LoRA setting fails here, naming what differs."""
        check_stage(checkpoint, type(self).__name__, "--ckpt_path")
        check_backbone(checkpoint, self.cfg, "--ckpt_path")
        saved = LoraConfig(**checkpoint["lora"]) if checkpoint.get("lora") is not None else None
        if saved != self.lora:
            raise CheckpointError(f"--ckpt_path: the checkpoint's LoRA settings differ from model.init_args.lora: "
                                  f"checkpoint {saved} vs config {self.lora}")
        check_resumed_weights(checkpoint.get("state_dict"), self.state_dict().keys(),
                              f"--ckpt_path={getattr(self._trainer, 'ckpt_path', None) or ''}")
