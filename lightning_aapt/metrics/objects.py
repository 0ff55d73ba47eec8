"""Object permanence: whether a generated stream keeps the world's passive objects (the toy world's sprites) as
objects, where they belong, frame after frame.

Notation: B clips, T frames, N objects per clip (padded), S pixel size.

The world re-renders its truth for the streamed actions and knows, per frame, which pixels show which object and
what lies beneath it (`ObjectTruth`). A generated frame is then read per object and pixel as its *colour alpha*:
the least-squares share of (object colour - what lies beneath) in (pixel - what lies beneath), counted where it is
at least `MIN_ALPHA`, the pixel's colour is that blend to within half the object's contrast, and no other object's
blend explains the pixel better (texture, noise and a similar colour such as cyan for green do not count). Summed
and divided by the same sum on the true frame:
- **mass near**: within the object's radius + `NEAR_PX` of its true centre (a 3-px drift or a blur still count);
- **kept**: mass near >= 0.5;
- **mass anywhere**: over the whole frame (is the object there at all, wherever it went);
- **position error**: the distance between the colour-alpha centroids of the generated and the true frame (a lost
  object, mass anywhere < 0.5, counts as the frame size S, as a lost agent does);
- **lifetime**: generated frames until the mass stays below 0.5 for `DEAD_FRAMES` scored frames in a row.
Pixels showing the agent or another object in the truth are left out of an object's sums, and a frame scores an
object only where at least half of it is visible (occlusion is not forgetting). The truth scores 1 everywhere; a
frame with the objects painted out scores about 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

MIN_ALPHA = 0.3  # weaker colour is noise, not object
NEAR_PX = 3.0  # "near": within radius + this of the true centre
DEAD_FRAMES = 3  # an object is dead once its mass stays below 0.5 this many scored frames in a row


@dataclass
class ObjectTruth:
    """What the world knows about its objects in each frame of B clips of T frames (N objects, padded)."""

    frames: Tensor  # (B, T, 3, S, S) the true frames in [0, 1]
    beneath: Tensor  # (B, T, 3, S, S) the same frames with every object painted out (what lies beneath them)
    visible: Tensor  # (B, T, N, S, S) each object's share of each pixel in the true frame (0: hidden, padding)
    area: Tensor  # (B, T, N) each object's whole area in pixels, hidden parts included (0: padding)
    colour: Tensor  # (B, N, 3) in [0, 1]
    centre: Tensor  # (B, T, N, 2) true centres (x, y) in pixels
    radius: Tensor  # (B, N) in pixels (0: padding)
    agent: Tensor  # (B, T, S, S) the agent's share of each pixel (it is scored by the agent metrics, not here)
    true_alpha_cache: Tensor | None = field(default=None, repr=False)  # `true_alpha`, once computed

    def __getitem__(self, frames: slice) -> ObjectTruth:
        """The same clips, frames `frames` only."""
        return ObjectTruth(self.frames[:, frames], self.beneath[:, frames], self.visible[:, frames],
                           self.area[:, frames], self.colour, self.centre[:, frames], self.radius,
                           self.agent[:, frames], None if self.true_alpha_cache is None else
                           self.true_alpha_cache[:, frames])

    def clips(self, clips: slice) -> ObjectTruth:
        """Clips `clips` only, all their frames (every field is batch-first)."""
        return ObjectTruth(*(None if (v := getattr(self, f.name)) is None else v[clips] for f in fields(self)))

    @property
    def true_alpha(self) -> Tensor:
        """(B, T, N, S, S) `colour_alpha` of the true frames, computed once (a report scores many streams of the same
        clips; a frame's alpha depends on that frame only, so a slice of the truth slices it)."""
        if self.true_alpha_cache is None:
            self.true_alpha_cache = colour_alpha(self.frames, self)
        return self.true_alpha_cache

    @property
    def scored(self) -> Tensor:
        """(B, T, N) bool: objects that exist and show at least half their area in the true frame."""
        return (self.area > 0) & (self.visible.sum(dim=(-2, -1)) >= 0.5 * self.area)


def colour_alpha(frames: Tensor, truth: ObjectTruth, clips: int = 8) -> Tensor:
    """(B, T, N, S, S) how much of each object's colour each pixel of frames (B, T, 3, S, S) holds over what lies
    beneath it in the truth, in [0, 1]; 0 where the pixel is not that blend, is closer to another object's blend
    (similar colours, such as cyan and green, are not mistaken for each other), or shows the agent or another
    object in the truth. Computed `clips` clips at a time (the same numbers; the (b, T, N, 3, S, S) intermediates
    of 256 clips are a gigabyte each, and memory traffic, not arithmetic, is the cost)."""
    if frames.shape[0] > clips:
        return torch.cat([colour_alpha(frames[i : i + clips], truth.clips(slice(i, i + clips)))
                          for i in range(0, frames.shape[0], clips)])
    beneath = truth.beneath[:, :, None]  # (B, T, 1, 3, S, S)
    contrast = truth.colour[:, None, :, :, None, None] - beneath  # (B, T, N, 3, S, S)
    offset = frames[:, :, None] - beneath  # (B, T, 1, 3, S, S)
    power = contrast.pow(2).sum(dim=3).clamp_min(1e-8)  # (B, T, N, S, S)
    alpha = (offset * contrast).sum(dim=3) / power  # least-squares blend weight
    residual = (offset - alpha[:, :, :, None] * contrast).pow(2).sum(dim=3) / power  # off the blend line, squared
    exists = (truth.radius > 0)[:, None, :, None, None]  # (B, 1, N, 1, 1)
    residual = torch.where(exists & (alpha >= MIN_ALPHA), residual, torch.full_like(residual, float("inf")))
    best = residual == residual.min(dim=2, keepdim=True).values  # the object whose blend explains the pixel best
    counted = best & (residual < 0.25)  # within half the contrast
    others = truth.visible.sum(dim=2, keepdim=True) - truth.visible + truth.agent[:, :, None]  # (B, T, N, S, S)
    return torch.where(counted & (others <= 0), alpha.clamp(max=1.0), torch.zeros_like(alpha))


@dataclass
class ObjectScores:
    """Per object and frame (B, T, N); `scored` says where a value means something."""

    near: Tensor  # mass near the true place / the truth's
    anywhere: Tensor  # mass over the whole frame / the truth's
    position_px: Tensor  # centroid distance to the truth's; S where lost
    scored: Tensor  # bool: the object exists and shows in the truth
    true_mass: Tensor  # the truth's own colour-alpha mass near its place (the denominators)

    def __getitem__(self, frames: slice) -> ObjectScores:
        """The scores of frames `frames` only (each frame is scored on its own)."""
        return ObjectScores(self.near[:, frames], self.anywhere[:, frames], self.position_px[:, frames],
                            self.scored[:, frames], self.true_mass[:, frames])

    def mean(self, values: Tensor) -> float:
        """The mean of a (B, T, N) value over the scored objects and frames (nan if none)."""
        return float(values[self.scored].float().mean()) if self.scored.any() else float("nan")

    def pooled(self, ratio: Tensor) -> float:
        """A (B, T, N) mass ratio pooled over the scored objects and frames, each weighted by the truth's mass (a
        ratio of sums: a frame where the truth shows little of an object does not count as much as a whole one)."""
        weight = self.true_mass * self.scored
        return float((ratio * weight).sum() / weight.sum()) if self.scored.any() else float("nan")

    def summary(self) -> dict[str, float]:
        """Window numbers: objects kept (share of scored objects and frames with mass near >= 0.5), mass near and
        anywhere (pooled), position error (mean)."""
        return {"objects_kept": self.mean(self.near >= 0.5), "object_mass_near": self.pooled(self.near),
                "object_mass": self.pooled(self.anywhere), "object_position_px": self.mean(self.position_px)}


def score_objects(frames: Tensor, truth: ObjectTruth) -> ObjectScores:
    """Object scores of frames (B, T, 3, S, S) in [0, 1] against the truth of the same clips and frames."""
    size = frames.shape[-1]
    coords = torch.arange(size, dtype=frames.dtype) + 0.5  # pixel centres, as the renderer
    dx = coords[None, None, None, None, :] - truth.centre[..., 0, None, None]  # (B, T, N, 1, S)
    dy = coords[None, None, None, :, None] - truth.centre[..., 1, None, None]  # (B, T, N, S, 1)
    near = (dx.pow(2) + dy.pow(2)).sqrt() <= truth.radius[:, None, :, None, None] + NEAR_PX  # (B, T, N, S, S)
    made, real = colour_alpha(frames, truth), truth.true_alpha
    real_near = (real * near).sum(dim=(-2, -1)).clamp_min(1e-6)  # (B, T, N)
    anywhere = made.sum(dim=(-2, -1)) / real.sum(dim=(-2, -1)).clamp_min(1e-6)  # (B, T, N)
    distance = (centroid(made, coords) - centroid(real, coords)).norm(dim=-1)
    position = torch.where(anywhere >= 0.5, distance, torch.full_like(distance, float(size)))
    return ObjectScores((made * near).sum(dim=(-2, -1)) / real_near, anywhere, position, truth.scored, real_near)


def centroid(alpha: Tensor, coords: Tensor) -> Tensor:
    """(..., 2) the (x, y) centroid in pixels of weights (..., S, S) at pixel centres `coords` (S,)."""
    mass = alpha.sum(dim=(-2, -1)).clamp_min(1e-6)
    return torch.stack([(alpha * coords).sum(dim=(-2, -1)) / mass, (alpha * coords[:, None]).sum(dim=(-2, -1)) / mass],
                       dim=-1)


def lifetimes(mass: Tensor, scored: Tensor, dead_frames: int = DEAD_FRAMES) -> Tensor:
    """(B, N) frames each object lives in a stream (B, T, N) of masses (frame 0 the first generated frame): the
    first scored frame of the first run of `dead_frames` scored frames with mass < 0.5; T if it never dies (its
    true lifetime is at least T). Unscored frames (hidden in the truth) neither end nor break a run; an object
    never scored gets -1."""
    B, T, N = mass.shape
    life = torch.full((B, N), T, dtype=torch.long)
    for b in range(B):
        for n in range(N):
            frames = scored[b, :, n].nonzero().flatten().tolist()
            if not frames:
                life[b, n] = -1
                continue
            run = 0
            for i, f in enumerate(frames):
                run = run + 1 if mass[b, f, n] < 0.5 else 0
                if run == dead_frames:
                    life[b, n] = frames[i - dead_frames + 1]
                    break
    return life


def lifetime_summary(life: Tensor, frames: int, suffix: str = "", at: tuple[int, ...] = (10, 20)) -> dict[str, float]:
    """`median_lifetime<suffix>` of the objects' `lifetimes` (B, N) in a stream of `frames` generated frames, and
    `alive<suffix>_after_<k>`, the share still alive after k frames for each of `at` and at the end."""
    alive = life[life >= 0].float()
    if alive.numel() == 0:
        return {}
    summary = {f"median_lifetime{suffix}": float(alive.median())}
    for k in (*[k for k in at if k < frames], frames):
        summary[f"alive{suffix}_after_{k}"] = float((alive >= k).float().mean())
    return summary
