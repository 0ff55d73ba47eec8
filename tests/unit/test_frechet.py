"""Our Fréchet distance against a textbook computation and the closed form for Gaussians."""

import numpy as np
import pytest
import scipy.linalg
import torch

from lightning_aapt.metrics import FrechetDistance

pytestmark = pytest.mark.unit


def textbook_fd(a: np.ndarray, b: np.ndarray, bias: bool = False) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False, bias=bias), np.cov(b, rowvar=False, bias=bias)
    covmean = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def exact_sample(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> torch.Tensor:
    """n samples whose sample mean and unbiased sample covariance are exactly `mean` and `cov`."""
    x = np.random.default_rng(seed).normal(size=(n, len(mean)))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T  # whitened: sample cov = I
    return torch.from_numpy(x @ np.linalg.cholesky(cov).T + mean)


def fd(real, fake, batch=64, unbiased=True):
    metric = FrechetDistance(unbiased=unbiased)
    for i in range(0, len(real), batch):
        metric.update(real[i : i + batch], real=True)
    for i in range(0, len(fake), batch):
        metric.update(fake[i : i + batch], real=False)
    return metric.compute().item()


def test_matches_the_textbook_formula_on_random_features():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(loc=0.3, size=(400, 16)) @ rng.normal(size=(16, 16))
    assert fd(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(textbook_fd(a, b), rel=1e-4)


def test_default_covariance_is_stylegan_v_maximum_likelihood():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 4)), rng.normal(loc=0.5, scale=2.0, size=(30, 4))
    got = fd(torch.from_numpy(a), torch.from_numpy(b), unbiased=False)
    assert got == pytest.approx(textbook_fd(a, b, bias=True), rel=1e-6)
    assert got != pytest.approx(textbook_fd(a, b, bias=False), rel=1e-3)


def test_closed_form_for_two_known_gaussians():
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0])
    expected = ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()  # diagonal covariances
    got = fd(exact_sample(300, m1, np.diag(v1), 1), exact_sample(200, m2, np.diag(v2), 2))
    assert got == pytest.approx(expected, rel=1e-6)


def test_a_set_against_itself_is_zero():
    x = torch.randn(300, 8, dtype=torch.float64)
    assert abs(fd(x, x)) < 1e-6


def test_too_few_samples_and_bad_features_are_reported():
    metric = FrechetDistance()
    metric.update(torch.randn(1, 4), real=True)
    metric.update(torch.randn(5, 4), real=False)
    with pytest.raises(ValueError, match="at least 2 real samples"):
        metric.compute()
    with pytest.raises(ValueError, match="NaN"):
        metric.update(torch.full((2, 4), float("nan")), real=True)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        metric.update(torch.randn(2, 3, 4), real=True)


def test_extractor_is_applied_to_videos():
    def mean_colour(video):  # (B, F, 3, H, W) -> (B, 3)
        return video.mean(dim=(1, 3, 4))

    metric = FrechetDistance(extractor=mean_colour)
    metric.update(torch.rand(6, 2, 3, 4, 4), real=True)
    metric.update(torch.rand(6, 2, 3, 4, 4) * 0.5, real=False)
    assert metric.compute() > 0
