"""The cached, frame-by-frame path computes the same function as the masked full-sequence forward."""

import pytest
import torch

from tests.helpers import frames_slice, tiny_inputs, tiny_model

pytestmark = pytest.mark.unit

LAYOUTS = [
    pytest.param(None, 1, id="unbounded"),
    pytest.param(4, 1, id="window4-sink1"),
    pytest.param(4, 0, id="window4-nosink"),
    pytest.param(3, 2, id="window3-sink2"),
]


@pytest.mark.parametrize(("window", "sink"), LAYOUTS)
@pytest.mark.parametrize("chunk", [1, 2, 3, 5])  # 5: longer than the ring
def test_streaming_equals_full_sequence(window, sink, chunk):
    model = tiny_model(window_frames=window, sink_frames=sink, control_dim=3)
    frames = 2 * (window or 4) + 3  # longer than the window: frames leave it
    inputs = tiny_inputs(model.cfg, batch=2, frames=frames)
    with torch.no_grad():
        full = model(**inputs)
        cache = model.new_cache(2)
        streamed = torch.cat([model(**frames_slice(inputs, s, s + chunk), cache=cache)
                              for s in range(0, frames, chunk)], dim=1)
    assert cache.num_frames == frames
    assert full.abs().mean() > 0.1  # a real signal, not the zero-initialised output
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-5)


def test_read_only_call_leaves_cache_unchanged():
    model = tiny_model(window_frames=4, sink_frames=1)
    inputs = tiny_inputs(model.cfg, batch=2, frames=7)
    with torch.no_grad():
        full = model(**inputs)
        cache = model.new_cache(2)
        model(**frames_slice(inputs, 0, 6), cache=cache)
        keys_before = [k.clone() for k in cache.keys]
        probe = frames_slice(tiny_inputs(model.cfg, batch=2, frames=7, seed=9), 6, 7)
        model(**probe, cache=cache, cache_write=False)  # e.g. an Euler sub-step
        assert cache.num_frames == 6
        assert all(torch.equal(a, b) for a, b in zip(keys_before, cache.keys, strict=True))
        last = model(**frames_slice(inputs, 6, 7), cache=cache)
    torch.testing.assert_close(last, full[:, 6:7], atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("window", "sink"), LAYOUTS)
def test_cuda_streaming_equals_flex_full_sequence(window, sink):
    """On CUDA the full sequence runs FlexAttention ("auto") while streaming runs SDPA on the cache."""
    model = tiny_model(window_frames=window, sink_frames=sink, control_dim=3).cuda()
    frames = 2 * (window or 4) + 3
    inputs = {k: None if v is None else v.cuda() for k, v in tiny_inputs(model.cfg, 2, frames).items()}
    with torch.no_grad():
        full = model(**inputs)
        cache = model.new_cache(2)
        streamed = torch.cat([model(**frames_slice(inputs, s, s + 1), cache=cache) for s in range(frames)], dim=1)
    torch.testing.assert_close(streamed, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("qk_norm", ["per_head", "across_heads", "none"])
def test_streaming_equals_full_sequence_for_every_qk_norm(qk_norm):
    model = tiny_model(window_frames=3, sink_frames=2, qk_norm=qk_norm)
    inputs = tiny_inputs(model.cfg, batch=2, frames=8)
    with torch.no_grad():
        full = model(**inputs)
        cache = model.new_cache(2)
        streamed = torch.cat([model(**frames_slice(inputs, s, s + 1), cache=cache) for s in range(8)], dim=1)
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-5)
