"""Window-local positions: what a frame computes depends on what it sees, never on its absolute index."""

import pytest
import torch

from tests.helpers import frames_slice, tiny_inputs, tiny_model

pytestmark = pytest.mark.unit


def stream_outputs(model, inputs, cache):
    with torch.no_grad():
        return [model(**frames_slice(inputs, f, f + 1), cache=cache) for f in range(inputs["latents"].shape[1])]


def concat(*parts):
    return {k: (parts[0][k] if k == "text" else torch.cat([p[k] for p in parts], dim=1)) for k in parts[0]}


@pytest.mark.parametrize("sink", [1, 2])
def test_same_sink_and_window_give_identical_outputs_whatever_came_between(sink):
    window = 4
    model = tiny_model(window_frames=window, sink_frames=sink, control_dim=3)
    cfg = model.cfg
    # Every layer widens the receptive field by window - 1 frames, so the cached keys of the last
    # `depth * window` frames are what a frame's output depends on (besides the sinks).
    shared = cfg.depth * window
    head = tiny_inputs(cfg, batch=2, frames=sink, seed=1)
    tail = tiny_inputs(cfg, batch=2, frames=shared + 1, seed=2)
    head["text"] = tail["text"]
    outputs = []
    for prefix_len, seed in [(3, 3), (1000, 4)]:
        prefix = tiny_inputs(cfg, batch=2, frames=prefix_len, seed=seed)
        prefix["text"] = tail["text"]
        cache = model.new_cache(2)
        outputs.append(stream_outputs(model, concat(head, prefix, tail), cache)[-(shared + 1):])
    short, long = outputs
    assert torch.equal(short[-1], long[-1])  # bit for bit, 3 vs 1000 frames in between
    assert not torch.equal(short[0], long[0])  # the first shared frame still sees different history


def test_streaming_frame_by_frame_equals_the_full_sequence_with_an_unbounded_window():
    """Unbounded window, no sink: a clip streamed frame by frame through the cache (each frame at its own absolute
    position) gives the full-sequence forward's outputs."""
    model = tiny_model(window_frames=None, sink_frames=0)
    inputs = tiny_inputs(model.cfg, batch=1, frames=5)
    with torch.no_grad():
        full = model(**inputs)
        cache = model.new_cache(1)
        streamed = torch.cat(stream_outputs(model, inputs, cache), dim=1)
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-5)
