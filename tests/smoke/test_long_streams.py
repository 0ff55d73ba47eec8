"""The one long-stream evaluator (`evaluation.long_streams`): its streams are every stream of the seed, and it
scores the floors and the truth itself beside them."""

import pytest
import torch

from lightning_aapt.evaluation.long_streams import ToyLongStreams, comparison_rows, long_stream_markdown
from lightning_aapt.evaluation.toy import rendered_episodes
from lightning_aapt.inference import stream_after_context
from tests.helpers_play import playable_model

pytestmark = pytest.mark.smoke


def test_a_timed_stream_is_the_seeds_stream_and_sits_beside_its_floors(toy_data):
    """The report's streams are timed after a warm-up; the warm-up has its own noise, so a stream is exactly what
    `stream_after_context` (validation, `sample`) makes of the same scenes and seed."""
    model = playable_model()
    streams = ToyLongStreams(toy_data, clips=2, frames=12, context_frames=2, window=4)
    stream = streams.stream(model, steps=1, shift=1.0, seed=3)
    episodes, _, _ = rendered_episodes(streams.scenes, streams.actions, streams.toy.world, 2)
    text = streams.toy.text_encoder().encode([e.caption for e in episodes])
    again = stream_after_context(model, text, stream.latents[:, :2], streams.actions, 12, 1, 1.0, seed=3)
    torch.testing.assert_close(stream.latents[:, 2:], again.float(), atol=0, rtol=0)

    compared = streams.compared_with(stream)
    assert set(compared) == {"repeat", "perfect_physics", "truth"}
    assert compared["truth"].curves["pixel_mse_truth"] == [0.0] * len(compared["truth"].starts)
    assert compared["truth"].starts == streams.score(stream.generated, stream).starts == [2, 6]
    lines = long_stream_markdown(comparison_rows(compared), 12, 2, 2, 4, 6)
    assert "| *the truth itself* | 1.00 → 1.00 | 1.00 → 1.00 |" in "\n".join(lines)  # every object kept, all its mass
