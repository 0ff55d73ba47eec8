"""`FrechetDistance`: the Fréchet distance between real and generated feature distributions (docs/architecture.md §7).

Notation: N samples, D feature width; videos (B, F, 3, H, W) in [0, 1].

Streaming sufficient statistics, as StyleGAN-V's FVD and torchmetrics' FID keep them: per side, the count,
the float64 sum of features and the float64 sum of their outer products, summed across ranks. `compute()`
turns them into the mean and the covariance and calls torch-fidelity's `fid_statistics_to_metric`:

    FD = ||mu_r - mu_g||^2 + tr(S_r) + tr(S_g) - 2 tr((S_r S_g)^(1/2))

Covariance convention (implementations disagree here): by default the maximum-likelihood covariance (divided by N), as
StyleGAN-V's FVD computes it, so our FVD follows its protocol; `unbiased=True` divides by N - 1 (numpy's `cov`,
torch-fidelity's FID). The difference is a factor N / (N - 1) on both covariances: small at FVD's 2048 clips,
visible at a toy evaluation's 64.

The name of the number is the extractor's business: with I3D it is FVD, otherwise `fd_<extractor>`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
from torchmetrics import Metric


class FrechetDistance(Metric):
    """Fréchet distance between the features of real and generated samples.

    Args:
        extractor: maps videos (B, F, 3, H, W) in [0, 1] to features (B, D); None: `update` receives features
            (N, D) directly.
        unbiased: divide the covariance by N - 1 instead of N (StyleGAN-V, the default, uses N).

    `update(x, real)` adds a batch to the real (`real=True`) or generated side; `compute()` needs at least two
    samples per side. Every rank must update at least once before `compute()` in a distributed run (the
    feature width is learned from the first batch).
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, extractor: Callable[[Tensor], Tensor] | None = None, unbiased: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.extractor, self.unbiased = extractor, unbiased
        for side in ("real", "fake"):
            # 0-dim zeros broadcast to (D,) and (D, D) at the first update.
            self.add_state(f"{side}_count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, x: Tensor, real: bool) -> None:
        features = x if self.extractor is None else self.extractor(x)
        if features.dim() != 2:
            raise ValueError(f"FrechetDistance needs features (N, D); got {tuple(features.shape)}"
                             + ("" if self.extractor is None else " from the extractor"))
        if not torch.isfinite(features).all():
            raise ValueError("FrechetDistance.update: features hold NaN or Inf")
        f = features.detach().to(torch.float64)
        side = "real" if real else "fake"
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + f.shape[0])
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)

    def statistics(self, real: bool) -> tuple[Tensor, Tensor]:
        """Mean (D,) and covariance (D, D) of one side, float64."""
        side = "real" if real else "fake"
        n = getattr(self, f"{side}_count")
        if n < 2:
            raise ValueError(f"FrechetDistance needs at least 2 {side} samples, got {int(n)}")
        mean = getattr(self, f"{side}_sum") / n
        cov = (getattr(self, f"{side}_outer") - n * torch.outer(mean, mean)) / (n - 1 if self.unbiased else n)
        return mean, cov

    def compute(self) -> Tensor:
        (mu_r, s_r), (mu_g, s_g) = self.statistics(True), self.statistics(False)
        stats = [{"mu": mu.cpu().numpy(), "sigma": s.cpu().numpy()} for mu, s in ((mu_r, s_r), (mu_g, s_g))]
        return torch.tensor(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID], dtype=torch.float64)
