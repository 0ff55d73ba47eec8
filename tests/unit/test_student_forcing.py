"""Student forcing: the parallel recomputation reproduces the rollout; gradients go only where allowed."""

import itertools

import pytest
import torch

from lightning_aapt.adversarial.rollout import extend_controls, regenerate, rollout
from lightning_aapt.stages.adversarial import real_counterpart, segments
from tests.helpers import LATENT, tiny_model

pytestmark = pytest.mark.unit


def make_rollout(model, frames=10, snapshot_at=(), context_frames=1):
    """A rollout of a `frames`-frame video (noises and controls per video frame; frame 0's are not used)."""
    gen = torch.Generator().manual_seed(3)
    context = torch.randn(2, context_frames, 4, *LATENT, generator=gen)
    text = torch.randn(2, 5, 16, generator=gen)
    noises = torch.randn(2, frames, 4, *LATENT, generator=gen)
    controls = torch.randn(2, frames, 3, generator=gen)
    return rollout(model, context, text, noises, controls, snapshot_at=snapshot_at)


@pytest.mark.parametrize("kv_gradients", [True, False])
@pytest.mark.parametrize("window", [None, 4])
def test_parallel_recomputation_reproduces_the_rollout(kv_gradients, window):
    model = tiny_model(window_frames=window, sink_frames=1, control_dim=3)
    ro = make_rollout(model, frames=10, snapshot_at=(4, 6))
    assert ro.video[:, 1:].abs().mean() > 0.1
    for first, stop in [(1, 10), (4, 10), (6, 9)]:  # video frames
        again = regenerate(model, ro, first, stop, kv_gradients)
        assert again.requires_grad
        torch.testing.assert_close(again, ro.video[:, first:stop], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("window", [None, 4])
def test_a_rollout_after_real_context_frames_holds_them_and_recomputes_its_own(window):
    """K = 3 real frames: video frames 0-2 are the context (1-2 observed through the cache), and recomputing any
    generated span from its snapshot reproduces the rollout, as for a one-frame start."""
    model = tiny_model(window_frames=window, sink_frames=1, control_dim=3)
    ro = make_rollout(model, frames=10, snapshot_at=(3, 6), context_frames=3)
    context = torch.randn(2, 3, 4, *LATENT, generator=torch.Generator().manual_seed(3))  # make_rollout's first draw
    torch.testing.assert_close(ro.video[:, :3], context, atol=0, rtol=0)
    assert ro.context_frames == 3 and ro.video[:, 3:].abs().mean() > 0.1
    for first, stop in [(3, 10), (6, 8)]:
        torch.testing.assert_close(regenerate(model, ro, first, stop), ro.video[:, first:stop], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="inside the 3 context frames"):
        make_rollout(model, frames=10, snapshot_at=(2,), context_frames=3)
    with pytest.raises(ValueError, match="real context frames, given, not generated"):
        regenerate(model, ro, 1, 10)  # from frame 1 would remake the observed frames 1-2 from their noises


def grads_of_noises(model, kv_gradients, first=1, stop=11):
    ro = make_rollout(model, frames=11, snapshot_at=(first,) if first > 1 else ())
    ro.noises.requires_grad_(True)
    frames = regenerate(model, ro, first, stop, kv_gradients)
    frames[:, -1].pow(2).sum().backward()  # a loss on the last frame only
    return ro.noises.grad.flatten(2).abs().sum(-1).sum(0)  # (R,) gradient mass per video frame's noise


def test_gradients_flow_through_earlier_keys_and_values_when_allowed():
    model = tiny_model(window_frames=4, sink_frames=1, control_dim=3)
    mass = grads_of_noises(model, kv_gradients=True)
    # Video frame 10 attends to frames 7..10 and the sink (frame 1, the first in the cache); each of 2 layers reaches
    # window - 1 = 3 frames further back, so its receptive field is the sink plus frames 4..10. Frames 2-3 reach it
    # only through the (detached) recycled frames: no gradient; frame 0 is given (its noise is not used).
    assert mass[1] > 0 and (mass[4:] > 0).all()
    assert mass[0] == 0 and mass[2] == 0 and mass[3] == 0


def test_no_gradients_through_history_when_disabled():
    model = tiny_model(window_frames=4, sink_frames=1, control_dim=3)
    mass = grads_of_noises(model, kv_gradients=False)
    assert mass[-1] > 0 and (mass[:-1] == 0).all()


def test_recycled_frames_and_context_before_the_span_carry_no_gradient():
    model = tiny_model(window_frames=None, sink_frames=1, control_dim=3)
    mass = grads_of_noises(model, kv_gradients=True, first=4, stop=11)
    assert (mass[:4] == 0).all() and (mass[4:] > 0).all()
    for p in model.parameters():
        p.grad = None
    ro = make_rollout(model, frames=5)
    frames = regenerate(model, ro, 1, 5)
    frames.sum().backward()
    assert model.recycled_embed.weight.grad is not None  # parameters learn...
    assert not ro.recycled.requires_grad and ro.recycled.grad is None  # ...but no gradient into recycled frames


@pytest.mark.parametrize(("frames", "segment", "overlap"), [(8, 8, 1), (15, 8, 1), (16, 8, 1), (120, 30, 6),
                                                            (5, 8, 1), (23, 8, 2)])
def test_segments_cover_the_video_sharing_exactly_the_overlap(frames, segment, overlap):
    spans = segments(frames, segment, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == frames
    assert all(0 < b - a <= segment for a, b in spans)
    for (_, stop), (start, _) in itertools.pairwise(spans):
        assert stop - start == overlap  # consecutive segments share the overlap, no more
    stops = [0, *(b for _, b in spans[:-1])]
    new = [b - max(a, prev) for (a, b), prev in zip(spans, stops, strict=True)]
    assert sum(new) == frames  # every frame is new in exactly one segment


def test_segments_of_two_clips_minus_the_overlap_are_two():
    assert segments(15, 8, 1) == [(0, 8), (7, 15)]
    assert segments(16, 8, 1) == [(0, 8), (7, 15), (14, 16)]  # the remainder is a short segment
    with pytest.raises(ValueError, match="segment_overlap"):
        segments(16, 8, 8)


def test_segments_inside_the_real_clip_are_judged_against_its_frames_at_the_same_place():
    """A fake segment the real clip also holds is paired with those real frames (same scene, text and actions);
    past the clip's end, with the clip's prefix of the segment's length."""
    clip = 16
    assert [real_counterpart(a, b, clip) for a, b in segments(15, 8, 1)] == [(0, 8), (7, 15)]
    assert [real_counterpart(a, b, clip) for a, b in segments(29, 8, 1)] == [(0, 8), (7, 15), (0, 8), (0, 8)]
    assert real_counterpart(14, 20, clip) == (0, 6)


def test_controls_extend_back_and_forth():
    controls = torch.arange(4.0).reshape(1, 4, 1)
    assert extend_controls(controls, 9)[0, :, 0].tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert extend_controls(controls, 3).shape == (1, 3, 1) and extend_controls(None, 5) is None
