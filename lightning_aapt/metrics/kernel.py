"""Kernel distance (the unbiased polynomial-kernel MMD^2 of KID / KVD) between two feature sets.

Unlike the Fréchet distance it has no streaming sufficient statistics, so it needs the features themselves;
it is unbiased at small sample counts, which makes it the better number for a 64-clip toy evaluation.
Computed by torch-fidelity (`kid_features_to_metric`): mean over `subsets` random subsets of `subset_size`.
"""

from __future__ import annotations

from torch import Tensor
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric


def kernel_distance(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """(mean, std over subsets) of MMD^2 with the cubic polynomial kernel; features (N, D), (M, D).

    With N = M <= subset_size every subset would be the whole set: one subset is computed (the unbiased estimate
    from all samples) and the std is NaN (no spread to report)."""
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"kernel distance needs at least 2 samples per side; got {len(real)} and {len(fake)}")
    whole = size == len(real) == len(fake)
    out = kid_features_to_metric(real.double(), fake.double(), kid_subsets=1 if whole else subsets,
                                 kid_subset_size=size, rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], float("nan") if whole else out[KEY_METRIC_KID_STD]
