"""KVCache lifecycle: constant memory once the window is full, clear errors on misuse."""

import pytest
import torch

from lightning_aapt.inference import StreamingGenerator
from tests.helpers import LATENT, frames_slice, tiny_inputs, tiny_model

pytestmark = pytest.mark.unit


def test_cache_storage_is_constant_after_the_window_fills():
    model = tiny_model(window_frames=4, sink_frames=1, control_dim=3)
    gen = StreamingGenerator(model, latent_size=LATENT)
    gen.reset(torch.randn(2, 5, 16))
    gen.generate(6, torch.randn(2, 6, 3))  # window full
    cache = gen.cache
    shapes = [tuple(k.shape) for k in cache.keys + cache.values]
    pointers = [k.data_ptr() for k in cache.keys + cache.values]
    size = cache.memory_bytes()
    frames = gen.generate(500, torch.randn(2, 500, 3))
    assert [tuple(k.shape) for k in cache.keys + cache.values] == shapes
    assert [k.data_ptr() for k in cache.keys + cache.values] == pointers
    assert cache.memory_bytes() == size
    assert shapes[0][2] == 1 + 4  # sink + window slots
    assert cache.frames() == (0, 502, 503, 504, 505)
    assert torch.isfinite(frames).all()


def test_unbounded_cache_overflow_names_the_fix():
    model = tiny_model(window_frames=None)
    cache = model.new_cache(1, max_frames=3)
    inputs = tiny_inputs(model.cfg, batch=1, frames=4)
    with torch.no_grad():
        model(**frames_slice(inputs, 0, 3), cache=cache)
        with pytest.raises(RuntimeError, match="max_frames=3"):
            model(**frames_slice(inputs, 3, 4), cache=cache)


def test_batch_mismatch_is_reported():
    model = tiny_model(window_frames=4)
    cache = model.new_cache(2)
    with pytest.raises(ValueError, match="batch_size=2"), torch.no_grad():
        model(**tiny_inputs(model.cfg, batch=3, frames=1), cache=cache)


def test_dtype_mismatch_is_reported():
    model = tiny_model(window_frames=4)
    cache = model.new_cache(1)
    inputs = tiny_inputs(model.cfg, batch=1, frames=1)
    with torch.no_grad():
        model(**inputs, cache=cache)
        model64 = model.double()
        with pytest.raises(TypeError, match=r"torch\.float32"):
            model64(**{k: None if v is None else v.double() for k, v in inputs.items()}, cache=cache)


def test_latent_size_change_within_a_stream_is_reported():
    model = tiny_model(window_frames=4)
    cache = model.new_cache(1)
    with torch.no_grad():
        model(torch.randn(1, 1, 4, 4, 4), torch.rand(1, 1), torch.randn(1, 1, 4, 4, 4), torch.randn(1, 2, 16),
              cache=cache)
        with pytest.raises(ValueError, match="latent size changed"):
            model(torch.randn(1, 1, 4, 6, 6), torch.rand(1, 1), torch.randn(1, 1, 4, 6, 6), torch.randn(1, 2, 16),
                  cache=cache)


def test_bidirectional_model_has_no_cache():
    with pytest.raises(ValueError, match="convert_to_causal"):
        tiny_model(bidirectional=True).new_cache(1)


def test_reset_forgets_frames_and_prompt():
    model = tiny_model(window_frames=4)
    cache = model.new_cache(1)
    inputs = tiny_inputs(model.cfg, batch=1, frames=3)
    cache.set_prompt(inputs.pop("text"))
    with torch.no_grad():
        model(**inputs, text=None, cache=cache)
    cache.reset()
    assert cache.num_frames == 0 and cache.frames() == () and cache.prompt is None
    with pytest.raises(ValueError, match="set_prompt"), torch.no_grad():
        model(**inputs, text=None, cache=cache)


def test_prompt_equals_passing_the_text_and_switches_mid_stream():
    """A cached prompt gives what passing its text every call gives; set_prompt switches it, frames kept."""
    model = tiny_model(window_frames=3, sink_frames=1)
    inputs = tiny_inputs(model.cfg, batch=2, frames=6)
    text, other = inputs.pop("text"), torch.randn(2, 5, 16)
    texts = [text] * 3 + [other] * 3
    with torch.no_grad():
        passed, cache = [], model.new_cache(2)
        for f in range(6):
            passed.append(model(**frames_slice(inputs, f, f + 1), text=texts[f], cache=cache))
        prompted, cache = [], model.new_cache(2)
        for f in range(6):
            if f in (0, 3):
                cache.set_prompt(texts[f])
            prompted.append(model(**frames_slice(inputs, f, f + 1), text=None, cache=cache))
    torch.testing.assert_close(torch.cat(prompted, 1), torch.cat(passed, 1), atol=0, rtol=0)
    assert cache.frames() == (0, 3, 4, 5)


def test_a_steady_stream_builds_its_rope_and_mask_tables_once():
    """Tables are keyed on the rebased layout: over 200 frames only the window's fill adds layouts."""
    from lightning_aapt.backbone.attention import rotary_tables, token_mask

    model = tiny_model(window_frames=4, sink_frames=1, control_dim=3)
    gen = StreamingGenerator(model, latent_size=LATENT)
    gen.reset(torch.randn(1, 5, 16))
    rotary_tables.cache_clear()
    token_mask.cache_clear()
    gen.generate(10, torch.randn(1, 10, 3))  # fills the window: frames 0..4 see growing layouts
    builds = rotary_tables.cache_info().misses, token_mask.cache_info().misses
    assert 1 <= builds[0] <= 5 + 1  # one per layout of the fill, one for the steady state
    gen.generate(200, torch.randn(1, 200, 3))
    assert (rotary_tables.cache_info().misses, token_mask.cache_info().misses) == builds


def test_layouts_cached_while_streaming_serve_a_later_pass_with_gradients():
    """Masks/RoPE tables/indices are cached by layout; the first use may be inside inference_mode."""
    model = tiny_model(window_frames=4, sink_frames=1, control_dim=3)
    gen = StreamingGenerator(model, latent_size=LATENT)  # inference_mode
    gen.reset(torch.randn(1, 5, 16))
    gen.generate(7, torch.randn(1, 7, 3))
    cache = model.new_cache(1)
    inputs = tiny_inputs(model.cfg, batch=1, frames=7)
    outputs = [model(**frames_slice(inputs, f, f + 1), cache=cache) for f in range(7)]  # same layouts, with grad
    torch.cat(outputs, dim=1).sum().backward()
    assert model.head.weight.grad is not None
