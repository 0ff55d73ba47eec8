"""Toy-world evaluation: streams after real context frames, and the floors a generator is compared with."""

import numpy as np
import pytest
import torch

from lightning_aapt.codecs import LatentStats, NormalizedCodec, ToyCodec
from lightning_aapt.evaluation.toy import (
    floor_videos,
    policy_actions,
    score_toy_video,
    stream_toy_clips,
    teacher_forced_toy_clips,
)
from lightning_aapt.text import HashTextEncoder
from lightning_aapt.world import WorldConfig
from tests.helpers import tiny_model

pytestmark = pytest.mark.unit

WORLD = WorldConfig(size=8, max_sprites=2, min_radius=1.5, max_radius=2.0, agent_radius=1.5)


CODEC = NormalizedCodec(ToyCodec(2), LatentStats.identity(12))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_model(latent_channels=12, text_dim=16, control_dim=2, window_frames=3, sink_frames=1).eval()


@pytest.fixture(scope="module")
def stream(model):
    actions = policy_actions([1, 2, 3], 14)
    return stream_toy_clips(model, CODEC, HashTextEncoder(16, 8), WORLD, [5, 6, 7], actions, steps=2,
                            context_frames=3), actions


def test_the_stream_keeps_its_context_and_generates_the_rest(stream):
    s, _ = stream
    assert s.context_frames == 3 and s.generated.shape == s.truth.shape == (3, 14, 3, 8, 8)
    assert torch.equal(s.generated[:, :3], s.truth[:, :3])
    assert not torch.equal(s.generated[:, 3:], s.truth[:, 3:])  # an untrained model does not reproduce the truth


def test_floors_share_the_context_and_perfect_physics_moves_the_agent_exactly(stream):
    s, actions = stream
    floors = floor_videos(s, [5, 6, 7], actions, WORLD)
    assert torch.equal(floors["repeat"][:, :3], s.truth[:, :3])
    assert torch.equal(floors["repeat"][:, 3:], s.truth[:, 2:3].expand(-1, 11, -1, -1, -1))
    physics = floors["perfect_physics"]
    assert torch.equal(physics[:, :3], s.truth[:, :3])  # velocities are redrawn only after the context
    assert not torch.equal(physics, s.truth)
    report = score_toy_video(physics, s, window=4)
    truth_report = score_toy_video(s.truth, s, window=4)
    assert report.starts == [3, 7] and truth_report.curves["pixel_mse_truth"] == [0.0, 0.0]
    # the agent moves exactly as in the truth; only its anti-aliased edge over other sprites moves the centroid
    assert report.curves["agent_error_px"] == pytest.approx(truth_report.curves["agent_error_px"], abs=0.1)
    assert np.mean(report.curves["pixel_mse_truth"]) > 0  # the sprites went elsewhere


def test_teacher_forced_clips_make_each_frame_from_the_truth_before_it(model, stream):
    """The diagnostic without exposure bias: the same scenes and context as the stream, every later frame made from
    the true frames before it (and its own action), never from later ones."""
    s, actions = stream
    tf = teacher_forced_toy_clips(model, CODEC, HashTextEncoder(16, 8), WORLD, [5, 6, 7], actions, steps=2,
                                  context_frames=3)
    assert tf.context_frames == 3 and tf.generated.shape == s.generated.shape and torch.equal(tf.truth, s.truth)
    assert torch.equal(tf.generated[:, :3], s.truth[:, :3]) and torch.equal(tf.agent_pos, s.agent_pos)
    assert not torch.equal(tf.generated[:, 3:], s.generated[:, 3:])  # not the stream: the truth is its context
    changed = actions.clone()
    changed[:, 9:] = -changed[:, 9:]  # the same scenes, other actions from frame 9 on: other truth from frame 9
    other = teacher_forced_toy_clips(model, CODEC, HashTextEncoder(16, 8), WORLD, [5, 6, 7], changed, steps=2,
                                     context_frames=3)
    assert torch.equal(other.generated[:, :9], tf.generated[:, :9])
    assert not torch.equal(other.generated[:, 9:], tf.generated[:, 9:])
    with pytest.raises(ValueError, match="context_frames=14"):
        teacher_forced_toy_clips(model, CODEC, HashTextEncoder(16, 8), WORLD, [5], actions[:1], context_frames=14)
