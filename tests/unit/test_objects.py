"""Object permanence metrics: the world's layers, the object scores against the re-rendered truth, lifetimes, the
split of sharpness into detail kept and spurious detail, and the one-step amplitude transfer."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from lightning_aapt.codecs import ToyCodec
from lightning_aapt.evaluation.critic import probe_videos
from lightning_aapt.evaluation.toy import object_truth, policy_actions, rendered_episodes
from lightning_aapt.evaluation.transfer import amplitude_transfer, half_life
from lightning_aapt.metrics.drift import detail_scores, high_frequency_energy, long_horizon_drift
from lightning_aapt.metrics.objects import colour_alpha, lifetimes, score_objects
from lightning_aapt.text import HashTextEncoder
from lightning_aapt.world import WorldConfig, initial_state, scripted_actions, simulate
from lightning_aapt.world.live import LiveWorld
from lightning_aapt.world.scene import Episode, render, render_layers, step

pytestmark = pytest.mark.unit

WORLD = WorldConfig(size=16, min_sprites=1, max_sprites=2, min_radius=1.5, max_radius=2.5, max_speed=0.8,
                    agent_radius=2.0, agent_accel=1.0, agent_damping=0.0, agent_max_speed=1.2)
CLIPS, FRAMES = 24, 30


@pytest.fixture(scope="module")
def scenes():
    actions = policy_actions(list(range(500, 500 + CLIPS)), FRAMES)
    episodes, truth, _ = rendered_episodes(list(range(CLIPS)), actions, WORLD, 1)
    return episodes, truth, object_truth(episodes, truth), actions


def test_layers_compose_to_the_rendered_frame_and_share_every_pixel():
    state = initial_state(7, WORLD)
    for _ in range(5):
        step(state, np.array([0.5, -0.3]), WORLD)
        layers = render_layers(state, WORLD)
        assert np.array_equal(layers.compose().round().astype(np.uint8), render(state, WORLD))
        visible = layers.visible()
        assert visible.min() >= 0 and visible.sum(0).max() <= 1 + 1e-9  # no pixel shown twice over
        painted = layers.compose(without=tuple(range(1, len(state.radius))))  # the sprites painted out
        agent = visible[layers.body == 0].sum(0)  # (S, S)
        shown = np.abs(layers.compose() - painted).sum(-1) > 1e-9
        assert shown.any() and (agent[shown] < 1).all()  # only a sprite's uncovered pixels change


def test_the_truth_scores_perfect_and_painted_out_objects_score_nothing(scenes):
    _, truth, objects, _ = scenes
    real = score_objects(truth, objects)
    assert real.scored.any()
    assert real.summary() == pytest.approx({"objects_kept": 1, "object_mass_near": 1, "object_mass": 1,
                                            "object_position_px": 0}, abs=1e-5)
    gone = score_objects(objects.beneath, objects)
    assert gone.summary()["objects_kept"] == 0 and gone.summary()["object_mass"] < 0.02
    assert gone.summary()["object_position_px"] == WORLD.size  # lost objects count as the frame size


def test_the_truths_alpha_is_computed_once_and_sliced_with_its_frames(scenes):
    """A report scores ten streams of the same clips: the truth's colour alpha is kept on the truth, and a slice of
    the truth (frames after the context) slices it; clips at a time or all at once give the same numbers."""
    _, truth, objects, _ = scenes
    objects = dataclasses.replace(objects, true_alpha_cache=None)  # the module's truth may hold it already
    assert torch.equal(colour_alpha(truth, objects, clips=5), colour_alpha(truth, objects, clips=CLIPS))
    blurred = (truth + truth.roll(1, dims=-1)) / 2
    fresh = score_objects(blurred[:, 3:], objects[3:])
    assert objects.true_alpha_cache is None
    objects.true_alpha  # noqa: B018 (computed and kept)
    assert objects[3:].true_alpha_cache is not None
    again = score_objects(blurred[:, 3:], objects[3:])
    assert torch.equal(fresh.near, again.near) and torch.equal(fresh.position_px, again.position_px)
    assert torch.equal(objects[3:].true_alpha, colour_alpha(truth[:, 3:], objects[3:]))


def test_half_contrast_objects_read_as_half_and_are_not_kept(scenes):
    _, truth, objects, _ = scenes
    half = score_objects(objects.beneath + 0.5 * (truth - objects.beneath), objects).summary()
    assert 0.35 < half["object_mass"] < 0.55 and half["objects_kept"] < 0.25


def test_a_moved_object_is_kept_near_its_place_and_found_anywhere(scenes):
    """Repeating a frame: objects a few frames off are still near; far off, they are found only anywhere, and the
    position error grows with the time since."""
    _, truth, objects, _ = scenes
    errors = []
    for lag in (1, 20):
        repeat = torch.cat([truth[:, :1].expand(-1, lag, -1, -1, -1), truth[:, : FRAMES - lag]], dim=1)
        scores = score_objects(repeat[:, lag:], objects[lag:]).summary()
        errors.append(scores["object_position_px"])
        if lag == 1:
            assert scores["objects_kept"] > 0.95
        else:
            assert scores["objects_kept"] < 0.7 and scores["object_mass"] > 0.8
    assert errors[0] < 1.0 < errors[1]


def test_a_similar_colour_is_not_read_as_another_object():
    """Cyan and green differ by little: a green sprite where the cyan one should be does not keep the cyan one."""
    seed = next(s for s in range(200) if len(initial_state(s, WORLD).radius) == 3)
    state = initial_state(seed, WORLD)
    state.colour[1:] = ["cyan", "green"]
    state.pos[1], state.pos[2], state.pos[0] = [5.0, 5.0], [11.0, 11.0], [3.0, 13.0]
    swapped = initial_state(seed, WORLD)
    swapped.colour[1:] = ["green", "green"]  # the cyan sprite drawn green
    swapped.pos[:] = state.pos

    def episode(s):
        layers = render_layers(s, WORLD)
        return Episode(layers.compose().round().astype(np.uint8)[None], s.pos[None, 0], s.pos[None, 1:], "",
                       s.radius[1:], [layers])

    video = lambda e: torch.from_numpy(e.frames).permute(0, 3, 1, 2).float()[None] / 255  # noqa: E731
    truth = episode(state)
    objects = object_truth([truth], video(truth))
    scores = score_objects(video(episode(swapped)), objects)
    assert scores.near[0, 0, 0] < 0.05 and scores.near[0, 0, 1] > 0.95


def test_lifetime_is_the_first_of_three_dim_scored_frames():
    mass = torch.tensor([[1, 1, 0.4, 0.4, 0.4, 1], [1, 0.4, 0.4, 1, 0.4, 0.4], [1, 0.4, 0.4, 0.4, 0.4, 0.4]]).T
    scored = torch.ones(6, 3, dtype=torch.bool)
    scored[3, 2] = False  # hidden: neither ends nor breaks a run
    life = lifetimes(mass.T[None].transpose(1, 2), scored[None])
    assert life.tolist() == [[2, 6, 1]]
    assert lifetimes(mass.T[None].transpose(1, 2), torch.zeros(1, 6, 3, dtype=torch.bool)).tolist() == [[-1, -1, -1]]


def test_detail_separates_missing_objects_from_block_texture(scenes):
    _, truth, objects, _ = scenes
    assert detail_scores(truth, truth) == pytest.approx((1.0, 0.0))
    kept, spurious = detail_scores(objects.beneath, truth)
    assert kept < 0.9 and spurious < 1e-3  # objects painted out: edges lost, almost none made
    blocks = torch.randn(CLIPS, FRAMES, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.04
    texture = (truth + blocks.repeat_interleave(4, -1).repeat_interleave(4, -2)).clamp(0, 1)
    kept, spurious = detail_scores(texture, truth)
    assert kept > 0.97 and spurious > 0.01  # the truth's edges are there; the block edges are not the truth's
    # sharpness alone cannot tell the two apart: both within 25% of the truth's
    for video in (objects.beneath, texture):
        assert 0.7 < float(high_frequency_energy(video) / high_frequency_energy(truth)) < 1.3


def test_drift_reports_object_curves_and_lifetimes(scenes):
    episodes, truth, objects, _ = scenes
    agent = torch.from_numpy(np.stack([e.agent_pos for e in episodes])).float()
    fading = truth.clone()
    fading[:, 1:] = objects.beneath[:, 1:] + (truth - objects.beneath)[:, 1:] * 0.8 ** torch.arange(
        1, FRAMES)[None, :, None, None, None]  # each frame keeps 0.8 of the objects' contrast
    report = long_horizon_drift(fading, truth, 8, truth=truth, agent_pos=agent, objects=objects)
    kept = report.curves["objects_kept"]
    assert kept[0] > kept[-1] == 0
    assert 1 <= report.summary["median_lifetime"] <= 4  # contrast 0.8^k < 0.5 from k = 4 (anti-aliased edges earlier)
    perfect = long_horizon_drift(truth, truth, 8, truth=truth, agent_pos=agent, objects=objects)
    assert perfect.summary["median_lifetime"] == FRAMES - 1 and perfect.summary[f"alive_after_{FRAMES - 1}"] == 1


class Copy(torch.nn.Module):
    """A stand-in generator whose one step returns the frame before (v = x - recycled at t = 1)."""

    cfg = type("cfg", (), {"control_dim": 2})

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, recycled, text, controls, cache=None):
        return x - recycled


def test_transfer_of_a_copying_model_on_a_still_world_is_the_identity():
    still = WorldConfig(**{**WORLD.to_dict(), "max_speed": 0.0})
    actions = torch.zeros(6, 6, 2)
    result = amplitude_transfer(Copy(), ToyCodec(4), HashTextEncoder(8, 4), still, list(range(6)), actions)
    for bodies in ("objects", "agent"):
        a_out = result[bodies]["a_out"]
        np.testing.assert_allclose(a_out[:-1], result[bodies]["amplitudes"][:-1], atol=1e-4)
        assert 1 < a_out[-1] <= 1.25  # 1.25 x the contrast leaves [0, 1] for bright colours: the decoder clamps
        assert result[bodies]["half_life"] > 1e4  # a_out(1) = 1 up to float rounding: it never fades
        assert math.isnan(result[bodies]["error_vs_copy"])  # nothing moves: no pixel to weigh against copying


def test_transfer_errors_are_relative_to_copying(scenes):
    _, _, _, actions = scenes
    result = amplitude_transfer(Copy(), ToyCodec(4), HashTextEncoder(8, 4), WORLD, list(range(8)), actions[:8, :8])
    for bodies in ("objects", "agent"):
        assert result[bodies]["error_vs_copy"] == pytest.approx(1.0, abs=1e-3)  # the truth is rounded to 8 bits
        assert result[bodies]["a_out"][-2] < 1  # bodies move: the previous frame holds less of the next
    assert half_life(0.5) == pytest.approx(1.0) and half_life(0.87) == pytest.approx(4.98, abs=0.01)
    assert half_life(1.0) == math.inf


def test_a_live_frame_scores_as_the_simulated_one():
    actions = scripted_actions(3, 6)
    live = LiveWorld(WORLD)
    live.reset(4, 1)
    for a in actions[1:]:
        live.step(a)
    frame = live.frame()
    episode = simulate(4, np.concatenate([np.zeros((1, 2), np.float32), actions[1:]]), WORLD, layers=True)
    assert np.array_equal(frame.frames[0], episode.frames[-1])
    np.testing.assert_allclose(frame.layers[0].visible(), episode.layers[-1].visible())


def test_the_discriminator_probes_change_only_what_they_name(scenes):
    episodes, truth, objects, _ = scenes
    videos = probe_videos(truth, episodes, context_frames=2)
    assert set(videos) == {"objects_painted_out", "agent_painted_out", "block_texture"}
    for video in videos.values():
        assert torch.equal(video[:, :2], truth[:, :2])  # the context stays real
    gone = score_objects(videos["objects_painted_out"][:, 2:], objects[2:]).summary()
    assert gone["objects_kept"] == 0
    agent = torch.from_numpy(np.stack([e.agent_pos for e in episodes])).float()
    lost = long_horizon_drift(videos["agent_painted_out"], truth, 8, truth=truth, agent_pos=agent, first=2)
    assert min(lost.curves["agent_lost"]) == 1  # no agent anywhere
    kept, spurious = detail_scores(videos["block_texture"][:, 2:], truth[:, 2:])
    assert kept > 0.97 and spurious > 0.01


def test_a_checkpoint_without_a_discriminator_is_refused_by_name(tmp_path):
    from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT
    from lightning_aapt.checkpoints import load_discriminator, save_backbone
    from lightning_aapt.errors import CheckpointError

    cfg = BackboneConfig.preset("tiny", bidirectional=False, recycled_input=True, window_frames=4, sink_frames=1)
    save_backbone(CausalVideoDiT(cfg), tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointError, match=r"--ckpt=.*plain.ckpt: not a stage-3 checkpoint"):
        load_discriminator(tmp_path / "plain.ckpt")
