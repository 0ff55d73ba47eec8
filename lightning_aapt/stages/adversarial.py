"""Stage 3, `AdversarialPostTraining`: a 1-NFE generator trained on its own rollouts against a causal
discriminator that judges every frame (AAPT §2.2 (3), App. B).

Notation: B batch, F clip frames, R video frames (K real context frames + generated ones), C/H/W latent shape.

One training step, on a batch of real clips of F frames (text, actions, first frame):
1. Student-forcing rollout: from the real first frame (or the first K, `rollout.context_frames`, observed
   through the cache as at inference), the generator makes the other R - K frames, one network evaluation each,
   through its KV cache, without gradients (`adversarial/rollout.py`).
2. Discriminator update: on one segment (S frames) of the fake video (drawn with a generator seeded by the
   step, so every rank picks the same), paired per frame with real frames of the same length: the same clip's
   frames at the same place when the clip holds the segment (same scene, text and actions: the two differ only
   by the generator's errors), a real clip's prefix past the clip's end; relativistic loss plus approximated
   R1 (real) and R2 (fake). Real and fake are presented alike: zero recycled channels, nothing but the noised
   frames.
3. Generator update (every `discriminator.updates_per_g` steps, after `updates_before_g` D-only updates): segment by
   segment, the segment's frames are recomputed with gradients from a detached cache snapshot, judged, and
   back-propagated at once, so memory is bounded by one segment while every segment contributes gradients
   (AAPT's long-video training: 10 s segments, 1 s overlap). Each generated frame's loss counts once; overlap
   frames are the next segment's context. With R = S = F (the default) there is one segment: the whole clip.
   Optionally (`regression.distill_weight` > 0; not in AAPT, whose stage 3 is adversarial only) each generated
   frame also regresses onto the frozen teacher's K-step sample of it from the same noise, teacher-forced on the
   generator's own earlier frames: what the teacher would make next from where the generator's rollout actually is.
Past the clip, rollouts use its actions played back and forth.
Manual optimisation, AdamW with beta1 = 0, beta2 = 0.9 (AAPT/APT) and a per-network warm-up, gradient clipping,
EMA of the generator, and a guard that skips a step whose loss is not finite and aborts after `max_bad_steps` in a row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from lightning_aapt.adversarial import (
    CausalDiscriminator,
    approximate_gradient_penalty,
    fade_out_detail,
    relativistic_losses,
)
from lightning_aapt.adversarial.rollout import Rollout, extend_controls, regenerate, rollout, rollout_lengths
from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.checkpoints import load_backbone
from lightning_aapt.data import VideoBatch
from lightning_aapt.diffusion import shift_time
from lightning_aapt.errors import ConfigError
from lightning_aapt.inference.teacher_forcing import teacher_forced_video
from lightning_aapt.stages.adversarial_config import (
    AAPT_DISCRIMINATOR,
    AAPT_PENALTY,
    AAPT_ROLLOUT,
    ADAM_GAN,
    NO_REGRESSION,
    DiscriminatorConfig,
    PenaltyConfig,
    RegressionConfig,
    RolloutConfig,
)
from lightning_aapt.stages.base import StageModule
from lightning_aapt.stages.optim import OptimizerConfig, adamw, warmup_factor
from lightning_aapt.stages.randomness import RandomStream


def segments(video_frames: int, segment_frames: int, overlap: int) -> list[tuple[int, int]]:
    """(start, stop) of the segments that cover a video's frames 0..R-1: each `segment_frames` long, consecutive
    ones sharing `overlap` frames, the last one shorter when the rest does not fill a segment (a causal
    discriminator judges a short segment exactly as the same-length prefix of a real clip)."""
    if video_frames <= segment_frames:
        return [(0, video_frames)]
    stride = segment_frames - overlap
    if stride < 1:
        raise ValueError(f"segment_overlap={overlap} must be smaller than the segment ({segment_frames} frames)")
    spans, start = [], 0
    while True:
        stop = min(start + segment_frames, video_frames)
        spans.append((start, stop))
        if stop == video_frames:
            return spans
        start += stride


def real_counterpart(start: int, stop: int, clip_frames: int) -> tuple[int, int]:
    """(start, stop) of the real frames a fake span is judged against: the same clip's frames at the same place
    where the real clip holds them (same scene, text and actions), else the clip's prefix of the span's length
    (a causal discriminator judges a prefix exactly as a whole clip's first frames)."""
    return (start, stop) if stop <= clip_frames else (0, stop - start)


@dataclass
class GanStep:
    """One training step's index space, shared by the discriminator's and the generator's halves.

    Video frames 0..R-1: frames 0..K-1 are the clip's (context), K..R-1 the generator's, made by the rollout (student
    forcing) or from the real frames before them (teacher forcing). `spans` cut them into the segments that are
    judged; a segment's real counterpart comes from the clip (`real_counterpart`).
    """

    real: Tensor  # (B, F, C, H, W) the clip
    text: Tensor  # (B, L, Dt)
    controls: Tensor | None  # (B, R, A): the clip's, played forward and back past its end
    context_frames: int  # K
    rollout_frames: int  # R
    segment_frames: int  # S: the longest span
    spans: list[tuple[int, int]]  # segments (start, stop) of video frames
    noises: Tensor  # (B, R, C, H, W): each video frame's noise (frame 0, given, has none: zeros)
    fake: Tensor  # (B, R, C, H, W): the real context, then the generator's frames (no gradients)
    rollout: Rollout | None  # student forcing: the rollout, to regenerate spans with gradients

    @property
    def batch_size(self) -> int:
        return self.real.shape[0]

    @property
    def clip_frames(self) -> int:
        return self.real.shape[1]

    @property
    def segment_shape(self) -> tuple[int, ...]:
        """The discriminator's noises: a segment's worth, shared by real and fake."""
        return (self.batch_size, self.segment_frames, *self.real.shape[2:])

    def controls_of(self, start: int, stop: int) -> Tensor | None:
        return None if self.controls is None else self.controls[:, start:stop]


class AdversarialPostTraining(StageModule):
    """Student-forcing adversarial training of the one-step causal generator.

    Args (beyond `StageModule`, whose settings it takes as they are, with AAPT's defaults for the generator's
    `optimizer` (`ADAM_GAN`), `ema_decay` and one-step `sample_steps`; `init_from` is the stage-2 checkpoint):
        rollout: how the fake videos are made (`RolloutConfig`: length, real context, segments, forcing).
        discriminator: the discriminator and how it trains (`DiscriminatorConfig`: its init, heads, optimizer,
            updates per generator update, timestep shift, negative clips).
        penalty: its approximated R1/R2 penalties (`PenaltyConfig`).
        regression: optional regressions of the rollouts onto the teacher's frames or the real clip
            (`RegressionConfig`; not in AAPT).
        grad_clip: max gradient norm of each network (0 = no clipping).
        max_bad_steps: abort after this many consecutive non-finite losses of one network (each is skipped and
            counted).
    """

    def __init__(self, backbone: BackboneConfig, rollout: RolloutConfig = AAPT_ROLLOUT,
                 discriminator: DiscriminatorConfig = AAPT_DISCRIMINATOR, penalty: PenaltyConfig = AAPT_PENALTY,
                 regression: RegressionConfig = NO_REGRESSION, grad_clip: float = 1.0, max_bad_steps: int = 5,
                 optimizer: OptimizerConfig = ADAM_GAN, ema_decay: float = 0.995, sample_steps: int = 1,
                 **stage) -> None:
        super().__init__(backbone=backbone, optimizer=optimizer, ema_decay=ema_decay, sample_steps=sample_steps,
                         **stage)
        self.automatic_optimization = False
        self.rollout_cfg, self.disc_cfg = rollout, discriminator
        self.penalty_cfg, self.regression_cfg = penalty, regression
        backend = self.attention_backend
        if discriminator.init_from is not None:
            disc_backbone = load_backbone(discriminator.init_from, attention_backend=backend,
                                          flag="model.init_args.discriminator.init_from")
            if disc_backbone.cfg.bidirectional:
                raise ConfigError(f"model.init_args.discriminator.init_from={discriminator.init_from}: expected a "
                                  "causal (stage-1) checkpoint")
        else:
            disc_backbone = type(self.model)(self.cfg, backend)
        self.discriminator = CausalDiscriminator(disc_backbone, discriminator.head_layers)
        self.grad_clip, self.max_bad_steps = grad_clip, max_bad_steps
        self.bad_steps = {"d": 0, "g": 0}  # consecutive non-finite losses of each network
        self.d_updates = 0  # discriminator updates so far (the generator updates every updates_per_g of them)
        self.g_updates = 0  # generator updates so far (global_step counts both networks' steps)
        if regression.distill_weight > 0 and discriminator.init_from is None:
            raise ConfigError("model.init_args.regression.distill_weight > 0 samples the stage-1 teacher: set "
                              "model.init_args.discriminator.init_from to the stage-1 checkpoint")
        self.teacher = None
        if regression.distill_weight > 0:
            self.teacher = load_backbone(discriminator.init_from, attention_backend=backend,
                                         flag="model.init_args.discriminator.init_from")
            self.teacher.requires_grad_(False).eval()

    def check_backbone(self, cfg: BackboneConfig) -> None:
        if cfg.bidirectional or not cfg.recycled_input:
            raise ValueError("stage 3 trains the causal generator: set model.backbone.bidirectional=false and "
                             "model.backbone.recycled_input=true")

    def networks(self) -> list[torch.nn.Module]:
        return [*super().networks(), self.discriminator, *([self.teacher] if self.teacher is not None else [])]

    def on_train_start(self) -> None:
        wrapped = self.trainer.strategy.model  # DistributedDataParallel under DDP, by now
        if isinstance(wrapped, torch.nn.parallel.DistributedDataParallel) and not wrapped.find_unused_parameters:
            # Each optimizer step uses one network only: DDP must not wait for the other's gradients.
            raise ValueError("stage 3 under DDP needs trainer.strategy=ddp_find_unused_parameters_true (the "
                             "generator and discriminator update in turn); or use ModelParallelStrategy (FSDP2)")

    def configure_optimizers(self):
        """One AdamW per network, each warmed up over its own updates (`warmup_steps`). Stage 3 has no cool-down:
        its networks update at different rates, so a decay ending at `trainer.max_steps` would mean nothing."""
        for key, cfg in (("optimizer", self.optimizer_cfg), ("discriminator.optimizer", self.disc_cfg.optimizer)):
            if cfg.cooldown_steps:
                raise ValueError(f"model.init_args.{key}.cooldown_steps={cfg.cooldown_steps}: stage 3 has no "
                                 "cool-down (its generator and discriminator count their own updates); set 0")
            if cfg.warmup_steps < 0:
                raise ValueError(f"model.init_args.{key}.warmup_steps must be >= 0, got {cfg.warmup_steps}")
        opt_g = adamw(self.model.named_parameters(), self.optimizer_cfg)
        opt_d = adamw(self.discriminator.named_parameters(), self.disc_cfg.optimizer)
        warm_g = torch.optim.lr_scheduler.LambdaLR(opt_g, lambda step: warmup_factor(step, self.optimizer_cfg))
        warm_d = torch.optim.lr_scheduler.LambdaLR(opt_d, lambda step: warmup_factor(step, self.disc_cfg.optimizer))
        return [opt_g, opt_d], [warm_g, warm_d]

    # ----------------------------------------------------------------------------------- pieces

    def shared_generator(self) -> torch.Generator:
        """Random choices that shape computation come from here: identical on every rank (no deadlock)."""
        return torch.Generator().manual_seed(1_000_003 * (self.global_step + 1))

    def disc_timesteps(self, batch: int, stream: RandomStream) -> Tensor:
        """The discriminator's per-clip t (B,): U(0, 1) from `stream`, shifted by `disc_timestep_shift`."""
        return shift_time(self.sample_rand(batch, stream), self.disc_cfg.timestep_shift)

    def averaged_steps(self) -> int:
        return self.g_updates  # the generator's EMA warms up over its own updates, not D's as well

    def apply_update(self, optimizer, loss: Tensor, params, name: str) -> bool:
        """Step `optimizer` on `loss` (already back-propagated) unless it is not finite on some rank; True if
        stepped. Each network counts its own consecutive non-finite losses (`name`: "d" or "g")."""
        if not self.finite_on_every_rank(loss):
            optimizer.zero_grad(set_to_none=True)
            self.bad_steps[name] += 1
            self.log(f"train/skipped_{name}_steps", 1.0, reduce_fx="sum", batch_size=1)
            if self.bad_steps[name] >= self.max_bad_steps:
                raise RuntimeError(f"stage 3: {self.bad_steps[name]} non-finite {name.upper()} losses in a row "
                                   f"(loss {loss}); lower the learning rates or raise r1_gamma/r2_gamma")
            return False
        self.bad_steps[name] = 0
        if self.grad_clip > 0:  # not self.clip_gradients: it clips the same way but drops the norm logged here
            norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            self.log(f"train/grad_norm_{name}", norm, batch_size=1)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return True

    # -------------------------------------------------------------------------------- training

    def training_step(self, batch: VideoBatch, batch_idx: int) -> None:
        step = self.roll_out(batch)
        self.discriminator_step(step)
        if self.d_updates > self.disc_cfg.updates_before_g and self.d_updates % self.disc_cfg.updates_per_g == 0:
            self.generator_step(step)

    def rollout_frames(self, F: int) -> tuple[int, int, int]:
        """(S, R, K) for clips of F frames: frames per judged segment, frames of the rollout (first real frame
        included), real context frames it continues from."""
        ro = self.rollout_cfg
        return (*rollout_lengths(F, ro.frames, ro.segment_frames), ro.context_frames)

    def check_clip_frames(self, num_frames: int) -> None:
        super().check_clip_frames(num_frames)
        F = num_frames
        S, R, K = self.rollout_frames(F)
        if S > F:
            raise ConfigError(f"model.init_args.rollout.segment_frames={S} is longer than the real clips "
                              f"(data.num_frames={F}): the discriminator needs real frames for a whole segment")
        if not K < R or K > F:
            raise ConfigError(f"model.init_args.rollout.context_frames={K} must be below the rollout's {R} frames and "
                              f"at most the clips' {F} (data.num_frames)")

    def roll_out(self, batch: VideoBatch) -> GanStep:
        """The step's index space and the generator's frames, made without gradients (see `GanStep`)."""
        real, text = batch.latents, batch.text  # (B, F, C, H, W)
        B, F = real.shape[:2]
        self.check_clip_frames(F)
        S, R, K = self.rollout_frames(F)  # video frames 0..K-1 are the clip's, the rest the generator's
        controls = extend_controls(batch.controls, R)  # (B, R, A)
        spans = segments(R, S, self.rollout_cfg.segment_overlap)
        noises = self.sample_randn((B, R - 1, *real.shape[2:]), RandomStream.ROLLOUT, real.dtype)  # frames 1..R-1
        noises = torch.cat([torch.zeros_like(noises[:, :1]), noises], dim=1)  # (B, R, C, H, W): by video frame
        ro = None
        if self.rollout_cfg.forcing == "student":  # a span's first generated frame needs the cache before it
            ro = rollout(self.model, real[:, :K], text, noises, controls,
                         snapshot_at=tuple(max(a, K) for a, b in spans if 1 < max(a, K) < b))
            fake = ro.video  # (B, R, C, H, W): the real context, then G's
        else:  # AAPT App. D's variant: every frame made from the real frames before it, in one pass
            with torch.no_grad():
                made = teacher_forced_video(self.model, real[:, :R], text, controls, noises)  # (B, R, C, H, W)
            fake = torch.cat([real[:, :K], made[:, K:]], dim=1)
        return GanStep(real, text, controls, K, R, S, spans, noises, fake, ro)

    def discriminator_step(self, step: GanStep) -> None:
        """One segment against its real counterpart: relativistic loss + approximated R1 (real) and R2 (fake);
        both are presented alike (zero recycled channels, see discriminator.py)."""
        opt_d = self.optimizers()[1]
        D, real, text, B = self.discriminator, step.real, step.text, step.batch_size
        a, b = step.spans[int(torch.randint(len(step.spans), (1,), generator=self.shared_generator()))]
        ra, rb = real_counterpart(a, b, step.clip_frames)
        real_seg, real_controls, fake_seg = real[:, ra:rb], step.controls_of(ra, rb), step.fake[:, a:b].detach()
        fake_controls = step.controls_of(a, b)
        t_d = self.disc_timesteps(B, RandomStream.D_TIMESTEPS)
        noise_d = self.sample_randn(step.segment_shape, RandomStream.D_NOISE, real.dtype)
        self.toggle_optimizer(opt_d)
        real_logits = D(real_seg, t_d, noise_d, text, real_controls)
        fake_logits = D(fake_seg, t_d, noise_d, text, fake_controls)
        _, loss_d = relativistic_losses(fake_logits, real_logits)

        def penalty(x: Tensor, logits: Tensor, controls: Tensor | None, stream: RandomStream) -> Tensor:
            perturbation = self.sample_randn(step.segment_shape, stream, real.dtype)[:, : b - a]
            return approximate_gradient_penalty(lambda y: D(y, t_d, noise_d, text, controls), x,
                                                self.penalty_cfg.sigma, logits, perturbation).mean()

        r1 = penalty(real_seg, real_logits, real_controls, RandomStream.R1)
        r2 = penalty(fake_seg, fake_logits, fake_controls, RandomStream.R2)
        total_d = loss_d.mean() + self.penalty_cfg.r1_gamma * r1 + self.penalty_cfg.r2_gamma * r2
        if self.disc_cfg.negative_weight > 0:  # the same real segment with one detailed window faded from a frame on
            start = 1 + (self.sample_rand(B, RandomStream.NEGATIVES) * (b - a - 1)).long().clamp_max(b - a - 2)  # (B,)
            choice = self.sample_rand(B, RandomStream.NEGATIVE_REGION)  # (B,): which detailed window fades
            negative = fade_out_detail(real_seg, start, self.disc_cfg.negative_size, choice)  # (B, S, C, H, W)
            negative_logits = D(negative, t_d, noise_d, text, real_controls)
            _, loss_n = relativistic_losses(negative_logits, real_logits)  # (B, S)
            faded = torch.arange(b - a, device=start.device)[None] >= start[:, None]  # (B, S): the frames that differ
            loss_negative = (loss_n * faded).sum() / faded.sum()
            total_d = total_d + self.disc_cfg.negative_weight * loss_negative
            self.log_dict({"train/loss_negative": loss_negative,
                           "train/negative_accuracy": (real_logits > negative_logits)[faded].float().mean()},
                          batch_size=B, sync_dist=True)
        self.manual_backward(total_d)
        if self.apply_update(opt_d, total_d, self.discriminator.parameters(), "d"):
            self.lr_schedulers()[1].step()  # the warm-up counts D's own updates
        self.untoggle_optimizer(opt_d)
        self.d_updates += 1
        self.log_dict({"train/loss_d": loss_d.mean(), "train/r1": r1, "train/r2": r2,
                       "train/logit_real": real_logits.mean(), "train/logit_fake": fake_logits.mean(),
                       "train/d_accuracy": (real_logits > fake_logits).float().mean()}, batch_size=B, sync_dist=True)

    def generator_step(self, step: GanStep) -> None:
        """Every segment, recomputed with gradients, judged, back-propagated at once; each generated frame's loss
        counts once (in the first segment that holds it; overlap frames are context for the next)."""
        opt_g = self.optimizers()[0]
        D, real, text, controls, B = self.discriminator, step.real, step.text, step.controls, step.batch_size
        K, R, F = step.context_frames, step.rollout_frames, step.clip_frames
        self.toggle_optimizer(opt_g)
        t_g = self.disc_timesteps(B, RandomStream.G_TIMESTEPS)
        noise_g = self.sample_randn(step.segment_shape, RandomStream.G_NOISE, real.dtype)
        if self.rollout_cfg.forcing == "teacher":  # all frames in one pass, with gradients; each span is judged from it
            taught = teacher_forced_video(self.model, real[:, :R], text, controls, step.noises)  # (B, R, C, H, W)
            taught = torch.cat([real[:, :K], taught[:, K:]], dim=1)
        if self.teacher is not None:  # the teacher's sample of every generated frame, from the frames G saw
            with torch.no_grad():
                seen = step.fake if self.rollout_cfg.forcing == "student" else real[:, :R]  # (B, R, C, H, W)
                targets = teacher_forced_video(self.teacher, seen, text, controls, step.noises,
                                               self.regression_cfg.teacher_steps,
                                               self.timestep_cfg.shift)  # (B, R, C, H, W)
        real_logits = {}  # (start, stop) of a real span -> its logits (B, stop - start), judged once
        total_g = total_adversarial = total_distill = total_truth = torch.zeros((), device=self.device)  # G's and parts
        judged = K  # video frames whose loss is counted so far (frames 0..K-1 are real)
        made_frames = R - K  # generated frames: every loss is a mean over them

        def regression(frames: Tensor, targets: Tensor) -> Tensor:
            """Per-frame latent MSE of frames (B, n, C, H, W) to targets, summed over n, as a mean over made frames."""
            return (frames.float() - targets.float()).pow(2).flatten(2).mean(-1).sum(1).mean() / made_frames

        for a, b in step.spans:
            first = max(a, K)  # the real context frames take no gradient
            if first >= b:
                continue  # a span of context frames only
            if self.rollout_cfg.forcing == "student":
                frames = regenerate(self.model, step.rollout, first, b,
                                    self.rollout_cfg.kv_gradients)  # (B, b - first, C, H, W)
                video = torch.cat([step.fake[:, a:first], frames], dim=1)  # (B, b - a, C, H, W)
            else:
                video = taught[:, a:b]
            ra, rb = real_counterpart(a, b, F)
            if (ra, rb) not in real_logits:
                with torch.no_grad():
                    real_logits[ra, rb] = D(real[:, ra:rb], t_g, noise_g, text, step.controls_of(ra, rb))  # (B, b-a)
            logits = D(video, t_g, noise_g, text, step.controls_of(a, b))
            loss_g, _ = relativistic_losses(logits, real_logits[ra, rb])
            loss = loss_g[:, judged - a :].sum(1).mean() / made_frames
            total_adversarial = total_adversarial + loss.detach()
            if self.teacher is not None:  # frames judged..b-1 against the teacher's
                distill = regression(video[:, judged - a :], targets[:, judged:b])
                loss = loss + self.regression_cfg.distill_weight * distill
                total_distill = total_distill + distill.detach()
            if self.regression_cfg.truth_weight > 0 and judged < F:  # frames judged..min(b, F)-1 are in the clip
                stop = min(b, F)
                truth = regression(video[:, judged - a : stop - a], real[:, judged:stop])
                loss = loss + self.regression_cfg.truth_weight * truth
                total_truth = total_truth + truth.detach()
            judged = b
            self.manual_backward(loss, retain_graph=self.rollout_cfg.forcing == "teacher" and b < R)
            total_g = total_g + loss.detach()
        if self.apply_update(opt_g, total_g, self.model.parameters(), "g"):
            self.lr_schedulers()[0].step()  # the warm-up counts G's own updates
            self.update_averages()
            self.g_updates += 1
        self.untoggle_optimizer(opt_g)
        self.log("train/loss_g", total_adversarial, prog_bar=True, batch_size=B, sync_dist=True)
        if self.teacher is not None:
            self.log("train/distill", total_distill, batch_size=B, sync_dist=True)
        if self.regression_cfg.truth_weight > 0:
            self.log("train/truth", total_truth, batch_size=B, sync_dist=True)

    # ------------------------------------------------------------------------------ validation

    def validation_step(self, batch: VideoBatch, batch_idx: int) -> None:
        """Stream each validation clip with 1 NFE after its first `context_frames` frames, driven by its actions:
        latent MSE against the clip; and the teacher-forced next-frame error beside copying's (`StageModule`)."""
        error = self.stream_error(batch, batch_idx, steps=1)  # (B, F-K)
        self.log("val/stream_mse_1step", error.mean(), prog_bar=True, batch_size=len(batch), sync_dist=True)
        B, F = batch.latents.shape[:2]
        noise = torch.randn((B, F - 1, *batch.latents.shape[2:]), generator=self.validation_generator(batch_idx),
                            device=self.device)
        self.log_next_frame_errors("val", batch, noise)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["discriminator_config"] = dataclasses.asdict(self.discriminator.backbone.cfg)
        checkpoint["discriminator_heads"] = list(self.discriminator.head_layers)
        checkpoint["gan_counters"] = {"bad_steps_d": self.bad_steps["d"], "bad_steps_g": self.bad_steps["g"],
                                      "d_updates": self.d_updates, "g_updates": self.g_updates}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        counters = checkpoint.get("gan_counters", {})
        self.bad_steps = {"d": counters.get("bad_steps_d", 0), "g": counters.get("bad_steps_g", 0)}
        self.d_updates, self.g_updates = counters.get("d_updates", 0), counters.get("g_updates", 0)

