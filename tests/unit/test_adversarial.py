"""Discriminator and adversarial losses against closed forms and exact references."""

import math

import pytest
import torch

from lightning_aapt.adversarial import (
    CausalDiscriminator,
    approximate_gradient_penalty,
    exact_gradient_penalty,
    relativistic_losses,
)
from tests.helpers import LATENT, randomize, tiny_model

pytestmark = pytest.mark.unit


def tiny_discriminator(**changes):
    return randomize(CausalDiscriminator(tiny_model(window_frames=4, sink_frames=1, control_dim=3, **changes)),
                     seed=4, std=0.2)


def test_relativistic_loss_matches_its_closed_form():
    fake, real = torch.tensor([[0.3, -2.0, 5.0]]), torch.tensor([[1.0, 0.5, -1.0]])
    loss_g, loss_d = relativistic_losses(fake, real)
    for i in range(3):
        delta = fake[0, i].item() - real[0, i].item()
        assert loss_g[0, i].item() == pytest.approx(-math.log(1 / (1 + math.exp(-delta))), rel=1e-5)
        assert loss_d[0, i].item() == pytest.approx(-math.log(1 - 1 / (1 + math.exp(-delta))), rel=1e-5)
    # the discriminator wants fake below real; the generator the opposite
    assert relativistic_losses(torch.tensor([[-3.0]]), torch.tensor([[3.0]]))[1] < 0.01


def disc_inputs(frames: int, seed: int):
    """A video, its noise, per-clip t, text and controls for `tiny_discriminator` (2 clips)."""
    gen = torch.Generator().manual_seed(seed)
    video, noise = (torch.randn(2, frames, 4, *LATENT, generator=gen) for _ in range(2))
    return video, noise, torch.rand(2, generator=gen), torch.randn(2, 5, 16, generator=gen), torch.randn(2, frames, 3)


def test_discriminator_logits_of_past_frames_ignore_future_frames():
    disc = tiny_discriminator()
    video, noise, t, text, controls = disc_inputs(7, seed=0)
    with torch.no_grad():
        logits = disc(video, t, noise, text, controls)
        assert logits.shape == (2, 7)
        for f in range(6):
            changed = video.clone()
            changed[:, f + 1] += 2.0
            after = disc(changed, t, noise, text, controls)
            assert torch.equal(after[:, : f + 1], logits[:, : f + 1])
            assert not torch.allclose(after[:, f + 1], logits[:, f + 1])


def test_discriminator_sees_a_video_only_through_its_noised_frames():
    """At t = 1 the noised frames are pure noise, so two different videos must get the same logits: no clean copy
    of a frame reaches D (through the recycled channels or otherwise), and a segment cut from the middle of a
    long rollout is presented exactly like a real clip."""
    disc = tiny_discriminator()
    assert disc.backbone.recycled_embed.weight.abs().sum() > 0  # the channel exists and is not what makes it pass
    gen = torch.Generator().manual_seed(1)
    a, b, noise = (torch.randn(2, 5, 4, *LATENT, generator=gen) for _ in range(3))
    text, controls = torch.randn(2, 5, 16, generator=gen), torch.randn(2, 5, 3, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(disc(a, torch.ones(2), noise, text, controls),
                                   disc(b, torch.ones(2), noise, text, controls))
        assert not torch.allclose(disc(a, torch.full((2,), 0.5), noise, text, controls),
                                  disc(b, torch.full((2,), 0.5), noise, text, controls))


def test_a_short_segment_is_judged_as_the_same_length_prefix():
    disc = tiny_discriminator()
    video, noise, t, text, controls = disc_inputs(6, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(disc(video[:, :3], t, noise, text, controls[:, :3]),
                                   disc(video, t, noise, text, controls)[:, :3])


def test_approximated_r1_tends_to_the_exact_r1():
    disc = tiny_discriminator(attention_backend="reference").double()  # double backward needs the einsum path
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 4, *LATENT, generator=gen, dtype=torch.float64)
    noise = torch.randn(1, 3, 4, *LATENT, generator=gen, dtype=torch.float64)
    t, text = torch.tensor([0.4], dtype=torch.float64), torch.randn(1, 5, 16, generator=gen, dtype=torch.float64)
    controls = torch.randn(1, 3, 3, generator=gen, dtype=torch.float64)

    def d(v):
        return disc(v, t.expand(v.shape[0]), noise.expand(v.shape[0], -1, -1, -1, -1), text.expand(v.shape[0], -1, -1),
                    controls.expand(v.shape[0], -1, -1))

    exact = exact_gradient_penalty(d, x)[0].item()
    assert exact > 0
    draws = 4000  # Monte-Carlo over eps, batched; relative sampling error ~ sqrt(2 / draws) ~ 2%
    errors = {}
    for sigma in (0.3, 1e-3):
        torch.manual_seed(0)
        with torch.no_grad():
            approx = approximate_gradient_penalty(d, x.expand(draws, -1, -1, -1, -1), sigma)  # (draws, F)
        estimate = approx.sum(1).mean().item() / sigma**2  # E ||D(x + s eps) - D(x)||^2 / s^2 -> ||grad D||^2
        errors[sigma] = abs(estimate - exact) / exact
    assert errors[1e-3] < 0.05 and errors[1e-3] < errors[0.3], errors  # the estimate closes in on it as sigma falls


def test_discriminator_refuses_a_bidirectional_backbone():
    with pytest.raises(ValueError, match="causal"):
        CausalDiscriminator(tiny_model(bidirectional=True))


def test_fade_out_detail_fades_the_object_from_its_frame_on_and_nothing_else():
    """A flat latent video with one bright 2x2 blob: from frame s on the blob's window becomes its local mean
    (the blob is gone, its surroundings show), before s and outside the window the clip is untouched."""
    from lightning_aapt.adversarial import fade_out_detail
    from lightning_aapt.adversarial.negatives import local_mean

    video = torch.zeros(2, 5, 3, 8, 8)
    video[0, :, :, 2:4, 5:7] = 4.0  # clip 0: a blob at rows 2-3, columns 5-6
    video[1, :, :, 5:7, 1:3] = -3.0  # clip 1: a dark blob elsewhere
    start = torch.tensor([2, 4])
    out = fade_out_detail(video, start, size=2)
    for b, (rows, cols) in enumerate([(slice(2, 4), slice(5, 7)), (slice(5, 7), slice(1, 3))]):
        s = int(start[b])
        assert torch.equal(out[b, :s], video[b, :s])  # earlier frames as they were
        smooth = local_mean(video[b, s:], 2)
        assert torch.equal(out[b, s:, :, rows, cols], smooth[:, :, rows, cols])
        assert out[b, s:, :, rows, cols].abs().max() < video[b, s:, :, rows, cols].abs().min() / 2  # faded
        rest = torch.ones(8, 8, dtype=torch.bool)
        rest[rows, cols] = False
        assert torch.equal(out[b][..., rest], video[b][..., rest])  # nothing else changes
    with pytest.raises(ValueError, match="size 9"):
        fade_out_detail(video, start, size=9)


def test_fade_out_detail_draws_among_the_detailed_windows_in_proportion_to_their_detail():
    """Two blobs, one twice the other's amplitude: drawn windows cover both (the dim one about a third of the
    time: amplitude 1 against 2), never the flat background."""
    from lightning_aapt.adversarial import fade_out_detail

    video = torch.zeros(1, 3, 2, 8, 8)
    video[0, :, :, 2, 2] = 2.0  # away from the edges, where a local mean averages fewer cells
    video[0, :, :, 5, 5] = 1.0
    hits = {"bright": 0, "dim": 0}
    for u in torch.linspace(0, 0.999, 200):
        out = fade_out_detail(video, torch.tensor([1]), size=1, choice=u[None])
        changed = (out != video).any(2)[0, 1]  # (H, W) changed cells in frame 1
        assert changed.sum() == 1 and (out[0, 0] == video[0, 0]).all()
        if changed[2, 2]:
            hits["bright"] += 1
        elif changed[5, 5]:
            hits["dim"] += 1
    assert hits["bright"] + hits["dim"] == 200
    assert 0.25 < hits["dim"] / 200 < 0.42
