"""Long-horizon drift: how a streamed video's quality changes with time, window by window (docs/architecture.md §7).

Notation: B clips, T frames, C latent channels, h/w latent size, S pixel size, w frames per window.

A stream of T frames (frame 0 the given real frame) is cut into windows of w frames starting at frame 1; every
metric is computed per window, and its ratio last window / first window says whether quality decays:
- `fd_<extractor>` / `fvd`: Fréchet distance between the generated windows and reference windows (real video
  of the same length, at the same times when the reference is as long as the stream, else its first window);
- `latent_mean_shift`: mean over channels of |mean_gen - mean_real| / std_real (real = reference latents);
- `latent_std_ratio`: mean over channels of std_gen / std_real (collapse < 1 < explosion);
- `saturation`: fraction of decoded pixel values outside [0, 1] before clamping;
- on the toy world, `pixel_mse_truth` against the re-rendered truth for the same actions; `sharpness`, the
  high-frequency (neighbouring-pixel difference) energy relative to the truth's (blur < 1 < noise), and its two
  parts `detail_kept` (the truth's edges held) and `spurious_detail` (detail where the truth has none);
  `agent_error_px`, the distance between the agent found in the generated frame and its true position (the
  actions make it deterministic); `action_following_px`, the error of the agent's frame-to-frame displacement
  against the commanded one; `agent_mass`, the agent's white mass against the truth's (a faded agent < 1; a
  sprite turned into a second agent, which the position error sees only as a pull between the two, about 2);
  with the objects' truth, the object metrics of `lightning_aapt.metrics.objects` per window (`objects_kept`,
  `object_mass_near`, `object_mass`, `object_position_px`) and over the whole stream (`median_lifetime`,
  `alive_after_<k>` in `DriftReport.summary`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from lightning_aapt.metrics.frechet import FrechetDistance
from lightning_aapt.metrics.objects import ObjectTruth, lifetime_summary, lifetimes, score_objects


def window_starts(frames: int, window: int, first: int = 1) -> list[int]:
    """Starts of the full windows of `window` frames in frames first .. frames-1 (frames before `first` are the
    given context, not generated)."""
    if window < 1 or frames - first < window:
        raise ValueError(f"a stream of {frames} frames ({first} given) holds no full window of {window} generated "
                         "frames")
    return list(range(first, frames - window + 1, window))


def high_frequency_energy(frames: Tensor) -> Tensor:
    """Mean squared difference of neighbouring pixels (horizontal and vertical) of frames (B, T, 3, S, S): the
    edge energy that blur removes and noise or texture inflates. Sharpness = this of a generator / the truth's."""
    dx = frames[..., :, 1:] - frames[..., :, :-1]
    dy = frames[..., 1:, :] - frames[..., :-1, :]
    return (dx.pow(2).mean() + dy.pow(2).mean()) / 2


EDGE = 0.05  # a neighbouring-pixel colour difference above this is an edge (the backgrounds' gradients stay below)


def detail_scores(frames: Tensor, truth: Tensor, edge: float = EDGE) -> tuple[float, float]:
    """Where sharpness cannot tell detail from noise, split it by the truth's edges, for frames and truth
    (B, T, 3, S, S): `detail_kept`, the share of the truth's edges (neighbouring-pixel differences above `edge`)
    that the frames hold with the right sign and size (the projection of their differences onto the truth's: 1
    for the truth, lower for missing objects or blur); and `spurious_detail`, the frames' differences away from the
    truth's, where the truth has no edge, relative to the truth's whole edge energy (0 for the truth; block texture
    and noise raise it)."""
    made, real = neighbour_differences(frames), neighbour_differences(truth)  # (..., 3, P) each
    edges = real.norm(dim=-2, keepdim=True) > edge  # (..., 1, P)
    kept = (made * real * edges).sum() / (real.pow(2) * edges).sum().clamp_min(1e-12)
    spurious = ((made - real).pow(2) * ~edges).sum() / real.pow(2).sum().clamp_min(1e-12)
    return float(kept), float(spurious)


def neighbour_differences(frames: Tensor) -> Tensor:
    """(..., 3, P) the horizontal then the vertical differences of neighbouring pixels of frames (..., 3, S, S)."""
    dx = frames[..., :, 1:] - frames[..., :, :-1]
    dy = frames[..., 1:, :] - frames[..., :-1, :]
    return torch.cat([dx.flatten(-2), dy.flatten(-2)], dim=-1)


def white_weight(frames: Tensor, white: float = 0.5) -> Tensor:
    """Toy world: how much each pixel of frames (B, T, 3, S, S) in [0, 1] shows the white agent (B, T, S, S): how far
    its darkest channel rises above `white` (anti-aliased edges count in proportion; no sprite colour or background
    has every channel above 0.5)."""
    return ((frames.min(dim=2).values - white) / (1 - white)).clamp(0, 1)


def locate_agent(frames: Tensor, white: float = 0.5) -> Tensor:
    """Toy world: the agent's (x, y) position in pixels (B, T, 2) as the centroid of the white pixels of frames
    (B, T, 3, S, S) in [0, 1] (`white_weight`); NaN where no pixel shows white (the agent is lost)."""
    weight = white_weight(frames, white)  # (B, T, S, S)
    size = frames.shape[-1]
    coords = torch.arange(size, dtype=frames.dtype) + 0.5  # pixel centres, as the renderer
    mass = weight.sum(dim=(-2, -1))  # (B, T)
    x = (weight.sum(-2) * coords).sum(-1) / mass
    y = (weight.sum(-1) * coords).sum(-1) / mass
    pos = torch.stack([x, y], dim=-1)  # (B, T, 2)
    return torch.where((mass >= 1)[..., None], pos, torch.full_like(pos, float("nan")))


def action_following_error(frames: Tensor, true_pos: Tensor) -> Tensor:
    """(B, T-1) distance in pixels between the located agent's displacement from frame f-1 to f and the true one
    (the motion the actions commanded); a frame where the agent is lost in f-1 or f counts as the frame size S."""
    located = locate_agent(frames)  # (B, T, 2)
    step = (located[:, 1:] - located[:, :-1]) - (true_pos[:, 1:] - true_pos[:, :-1]).to(frames.dtype)
    return torch.nan_to_num(step.norm(dim=-1), nan=float(frames.shape[-1]))


def agent_error(frames: Tensor, true_pos: Tensor) -> Tensor:
    """(B, T) distance in pixels between the located and the true agent position (B, T, 2); a lost agent
    counts as the frame size S (as far off as the frame allows)."""
    dist = (locate_agent(frames) - true_pos.to(frames.dtype)).norm(dim=-1)
    return torch.nan_to_num(dist, nan=float(frames.shape[-1]))


@dataclass
class DriftReport:
    """Per-window curves of a long stream; `curves[name][k]` is the metric of window k (frames starts[k]...)."""

    window_frames: int
    starts: list[int]
    curves: dict[str, list[float]] = field(default_factory=dict)
    fps: float | None = None  # frames per second, to put seconds on the plot
    summary: dict[str, float] = field(default_factory=dict)  # numbers of the whole stream (object lifetimes)

    def ratio(self, name: str) -> float:
        """Last window / first window of one curve."""
        first, last = self.curves[name][0], self.curves[name][-1]
        return last / max(first, 1e-12)

    def ratios(self) -> dict[str, float]:
        return {name: self.ratio(name) for name in self.curves}

    def to_dict(self) -> dict:
        return {"window_frames": self.window_frames, "starts": self.starts, "fps": self.fps, "curves": self.curves,
                "ratios": self.ratios(), "summary": self.summary}


def long_horizon_drift(generated: Tensor, reference: Tensor, window: int, extractor=None, metric: str = "fd",
                       latents: Tensor | None = None, real_latents: Tensor | None = None,
                       truth: Tensor | None = None, agent_pos: Tensor | None = None,
                       fps: float | None = None, first: int = 1, objects: ObjectTruth | None = None,
                       reference_features: dict[int, Tensor] | None = None) -> DriftReport:
    """Per-window drift metrics of streams `generated` (B, T, 3, S, S), decoded and not clamped.

    Args:
        reference: real videos (B', T', 3, S, S) for the Fréchet distance and the latent reference; windows are
            taken at the same frames when T' >= T, else every window is compared with frames 1 .. w.
        window: frames per window.
        extractor: video feature extractor for the Fréchet distance (None: no FD curve); logged as `metric`.
        latents, real_latents: (B, T, C, h, w) generated and (B', T', C, h, w) real latents for the latent curves.
        truth: (B, T, 3, S, S) the re-rendered truth of the same clips and actions (toy world).
        agent_pos: (B, T, 2) the true agent positions (toy world).
        objects: the objects' truth of the same clips and frames (toy world).
        first: frames 0 .. first-1 are the given context (not scored; the first window starts at `first`).
        reference_features: {window start: the extractor's features of the reference window}, filled on first use:
            pass one dict to every call that scores streams against the same reference, extractor and window (a
            report scoring ten streams extracts the reference once).
    """
    T = generated.shape[1]
    starts = window_starts(T, window, first)
    report = DriftReport(window, starts, fps=fps)
    clamped = generated.clamp(0, 1)
    if real_latents is not None:
        flat = real_latents.float().transpose(1, 2).flatten(2)  # (B', C, T' h w)
        real_mean, real_std = flat.mean(dim=(0, 2)), flat.std(dim=(0, 2)).clamp_min(1e-6)  # (C,)
    curves: dict[str, list[float]] = {}
    scores = score_objects(clamped[:, first:], objects[first:]) if objects is not None else None  # frames first..

    def add(name: str, value: float) -> None:
        curves.setdefault(name, []).append(float(value))

    for s in starts:
        frames = slice(s, s + window)
        if extractor is not None:
            features = reference_features if reference_features is not None else {}
            if s not in features:
                ref = reference[:, frames] if reference.shape[1] >= T else reference[:, 1 : 1 + window]
                features[s] = extractor(ref.clamp(0, 1))
            fd = FrechetDistance()
            fd.update(features[s], real=True)
            fd.update(extractor(clamped[:, frames]), real=False)
            add(metric, fd.compute().item())
        if latents is not None and real_latents is not None:
            flat = latents[:, frames].float().transpose(1, 2).flatten(2)  # (B, C, w h w)
            add("latent_mean_shift", ((flat.mean(dim=(0, 2)) - real_mean).abs() / real_std).mean().item())
            add("latent_std_ratio", (flat.std(dim=(0, 2)) / real_std).mean().item())
        add("saturation", ((generated[:, frames] < 0) | (generated[:, frames] > 1)).float().mean().item())
        if truth is not None:
            add("pixel_mse_truth", (clamped[:, frames] - truth[:, frames]).pow(2).mean().item())
            add("sharpness", (high_frequency_energy(clamped[:, frames]) / high_frequency_energy(truth[:, frames])
                              .clamp_min(1e-12)).item())
            kept, spurious = detail_scores(clamped[:, frames], truth[:, frames])
            add("detail_kept", kept)
            add("spurious_detail", spurious)
        if scores is not None:
            for name, value in scores[s - first : s - first + window].summary().items():
                add(name, value)
        if agent_pos is not None:
            error = agent_error(clamped[:, frames], agent_pos[:, frames])  # (B, window)
            add("agent_error_px", error.mean().item())
            # streams whose agent is a quarter of the frame off (4 px at 16) somewhere in the window: lost, or
            # merged with a sprite; the mean error of a window is mostly made by these
            add("agent_lost", (error > generated.shape[-1] / 4).any(dim=1).float().mean().item())
            moves = slice(s - 1, s + window)  # displacements into each frame of the window
            add("action_following_px", action_following_error(clamped[:, moves], agent_pos[:, moves]).mean().item())
            if truth is not None:  # white mass against the truth's, per frame
                made, true = (white_weight(v[:, frames]).sum(dim=(-2, -1)) for v in (clamped, truth))  # (B, window)
                add("agent_mass", (made / true.clamp_min(1.0)).mean().item())
    report.curves = curves
    if scores is not None:  # lifetimes over every generated frame, windowed or not
        report.summary = {**lifetime_summary(lifetimes(scores.near, scores.scored), T - first),
                          **lifetime_summary(lifetimes(scores.anywhere, scores.scored), T - first, "_anywhere")}
    return report
