"""Adversarial objectives as pure functions: the relativistic pairing loss and approximated R1/R2.

Logits are per frame (B, F); losses are computed in float32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def relativistic_losses(fake_logits: Tensor, real_logits: Tensor) -> tuple[Tensor, Tensor]:
    """RpGAN (AAPT eq. 1; R3GAN eq. 2) per paired frame: delta = D(fake) - D(real).

    Returns (generator loss, discriminator loss), each (B, F): softplus(-delta) and softplus(delta),
    i.e. -log sigmoid(delta) for G and -log sigmoid(-delta) for D. Real and fake are paired by position:
    the same text, first frame and actions.
    """
    delta = fake_logits.float() - real_logits.float()
    return F.softplus(-delta), F.softplus(delta)


def approximate_gradient_penalty(discriminator: Callable[[Tensor], Tensor], x: Tensor, sigma: float,
                                 logits: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
    """Approximated R1 (x real) or R2 (x fake), AAPT eq. 2-3: ||D(x + sigma * eps) - D(x)||^2 per frame (B, F).

    For small sigma, E_eps of this equals sigma^2 * ||grad_x D(x)||^2, the exact penalty scaled by sigma^2,
    without double backward (which fused attention kernels lack). `discriminator` maps a video to (B, F)
    logits with everything else (its timestep and noise) held fixed; pass `logits` = D(x) to reuse them, and
    `noise` (like x) to choose eps (default: drawn from the global RNG).
    """
    if logits is None:
        logits = discriminator(x)
    perturbed = discriminator(x + sigma * (torch.randn_like(x) if noise is None else noise))
    return (perturbed.float() - logits.float()) ** 2


def exact_gradient_penalty(discriminator: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Exact R1/R2 by double backward: sum over frames f of ||grad_x D_f(x)||^2, per clip (B,). Tests only."""
    x = x.detach().requires_grad_(True)
    logits = discriminator(x)  # (B, F)
    penalty = x.new_zeros(x.shape[0])
    for f in range(logits.shape[1]):
        (grad,) = torch.autograd.grad(logits[:, f].sum(), x, create_graph=True)
        penalty = penalty + grad.pow(2).flatten(1).sum(1)
    return penalty
