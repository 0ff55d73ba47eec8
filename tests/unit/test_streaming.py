"""StreamingGenerator: one evaluation per frame, the same frames as a parallel pass, K-step sampling."""

import pytest
import torch

from lightning_aapt.inference import StreamingGenerator
from tests.helpers import LATENT, tiny_model

pytestmark = pytest.mark.unit


def count_forwards(model):
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("window", [None, 4])
def test_one_nfe_stream_equals_one_parallel_pass(window):
    model = tiny_model(window_frames=window, sink_frames=1, control_dim=3)
    calls = count_forwards(model)
    gen = StreamingGenerator(model, latent_size=LATENT, steps=1)
    text, controls = torch.randn(2, 5, 16), torch.randn(2, 11, 3)
    noises = torch.randn(2, 11, 4, *LATENT)
    gen.reset(text)
    frames = torch.stack([gen.step(controls[:, f], noises[:, f]) for f in range(11)], dim=1)
    assert len(calls) == 11  # one network evaluation per frame
    recycled = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1)
    with torch.no_grad():
        parallel = noises - model(noises, torch.ones(2, 11), recycled, text, controls)
    torch.testing.assert_close(frames, parallel, atol=1e-5, rtol=1e-5)


def test_first_frame_enters_through_the_recycled_channels():
    model = tiny_model(window_frames=4, sink_frames=1)
    gen = StreamingGenerator(model, steps=1)
    text, first, noise = torch.randn(1, 5, 16), torch.randn(1, 4, *LATENT), torch.randn(1, 4, *LATENT)
    gen.reset(text, first_frame=first)
    out = gen.step(noise=noise)
    with torch.no_grad():
        expected = noise - model(noise[:, None], torch.ones(1, 1), first[:, None], text)[:, 0]
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)


def test_k_steps_use_k_evaluations_and_store_one_entry_per_frame():
    model = tiny_model(window_frames=4, sink_frames=1)
    calls = count_forwards(model)
    gen = StreamingGenerator(model, latent_size=LATENT, steps=4, shift=3.0)
    gen.reset(torch.randn(2, 5, 16))
    frames = gen.generate(7)
    assert frames.shape == (2, 7, 4, *LATENT) and torch.isfinite(frames).all()
    assert len(calls) == 28 and gen.num_frames == 7


def test_k_step_cache_entry_is_the_last_evaluation():
    """Frame f's cached keys equal those of a parallel pass fed the last Euler step's input of each frame."""
    model = tiny_model(window_frames=None, sink_frames=1)
    inputs_seen = []
    model.register_forward_pre_hook(lambda _m, args, kwargs: inputs_seen.append(
        (args[0].clone(), args[1].clone(), kwargs.get("cache_write", True))), with_kwargs=True)
    gen = StreamingGenerator(model, latent_size=LATENT, steps=3)
    text = torch.randn(1, 5, 16)
    gen.reset(text)
    frames = gen.generate(4)
    written = [(x, t) for x, t, write in inputs_seen if write]
    assert len(written) == 4
    x = torch.cat([w[0] for w in written], dim=1)
    t = torch.cat([w[1] for w in written], dim=1)
    recycled = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1)
    reference = model.new_cache(1)
    with torch.no_grad():
        model(x, t, recycled, text, cache=reference)
    torch.testing.assert_close(reference.keys[-1][:, :, :4], gen.cache.keys[-1][:, :, :4], atol=1e-5, rtol=1e-5)


def test_step_before_reset_is_an_error():
    gen = StreamingGenerator(tiny_model(window_frames=4), latent_size=LATENT)
    with pytest.raises(RuntimeError, match="reset"):
        gen.step()


def test_bidirectional_model_is_refused():
    with pytest.raises(ValueError, match="causal"):
        StreamingGenerator(tiny_model(bidirectional=True), latent_size=LATENT)
