"""Long-horizon drift metrics: they flag a generator that drifts and leave ground truth alone."""

import numpy as np
import pytest
import torch

from lightning_aapt.codecs import ToyCodec
from lightning_aapt.metrics.drift import agent_error, locate_agent, long_horizon_drift, window_starts
from lightning_aapt.metrics.extractors import RandomVideoFeatures
from lightning_aapt.world import WorldConfig, scripted_actions, simulate

pytestmark = pytest.mark.unit

FRAMES, WINDOW, CLIPS = 64, 8, 16
WORLD = WorldConfig(size=16, agent_radius=2.0)


def episodes(first_seed: int):
    eps = [simulate(first_seed + i, scripted_actions(100 + first_seed + i, FRAMES, 0.85), WORLD) for i in range(CLIPS)]
    video = torch.from_numpy(np.stack([e.frames for e in eps])).permute(0, 1, 4, 2, 3).float() / 255
    return video, torch.from_numpy(np.stack([e.agent_pos for e in eps])).float()


def report_for(generated, truth, agent_pos, reference):
    codec = ToyCodec(4)
    return long_horizon_drift(generated, reference, WINDOW, RandomVideoFeatures(width=16), "fd_rand3d",
                              codec.encode(generated), codec.encode(reference), truth, agent_pos, fps=8)


def test_windows_skip_the_given_first_frame():
    assert window_starts(17, 8) == [1, 9]
    assert window_starts(20, 8) == [1, 9]
    with pytest.raises(ValueError, match="no full window"):
        window_starts(8, 8)


def test_agent_is_located_where_the_world_put_it():
    video, pos = episodes(0)
    err = agent_error(video, pos)
    assert err.median() < 0.5  # pixels; occluded or wall-clipped frames may be off a little
    lost = locate_agent(torch.zeros(1, 1, 3, 16, 16))
    assert torch.isnan(lost).all()
    assert agent_error(torch.zeros(1, 1, 3, 16, 16), pos[:1, :1]).item() == 16


def test_drift_metrics_flag_a_biased_generator_but_not_ground_truth():
    truth, pos = episodes(0)
    reference, _ = episodes(1000)  # other scenes: independent real video at the same times
    bias = 0.01 * torch.arange(FRAMES).float().reshape(1, FRAMES, 1, 1, 1)  # brighter every frame
    honest = report_for(truth, truth, pos, reference)
    drifting = report_for(truth + bias, truth, pos, reference)

    assert 0.5 < honest.ratio("fd_rand3d") < 2.0
    assert drifting.ratio("fd_rand3d") > 3 * honest.ratio("fd_rand3d")
    assert honest.curves["pixel_mse_truth"] == [0.0] * len(honest.starts)
    assert drifting.ratio("pixel_mse_truth") > 20
    assert 0.8 < honest.ratio("latent_std_ratio") < 1.25
    assert drifting.curves["latent_mean_shift"][-1] > 3 * honest.curves["latent_mean_shift"][-1]
    assert max(honest.curves["saturation"]) == 0 and drifting.curves["saturation"][-1] > 0.01
    assert max(honest.curves["agent_error_px"]) < 1.0
    assert honest.curves["agent_lost"] == [0.0] * len(honest.starts)
    blank = report_for(torch.zeros_like(truth), truth, pos, reference)  # no agent anywhere: every stream lost
    assert blank.curves["agent_lost"] == [1.0] * len(blank.starts)


def test_sharpness_and_action_following_are_exact_on_the_truth_and_flag_blur_and_a_frozen_agent():
    truth, agent_pos = episodes(0)
    report = report_for(truth, truth, agent_pos, episodes(50)[0])
    assert all(v == pytest.approx(1.0) for v in report.curves["sharpness"])
    assert max(report.curves["action_following_px"]) < 0.6  # the locator's own error (pixel-centre centroid)
    blurred = torch.nn.functional.avg_pool2d(truth.flatten(0, 1), 3, 1, 1, count_include_pad=False)
    blurred = blurred.unflatten(0, truth.shape[:2])
    assert max(report_for(blurred, truth, agent_pos, truth).curves["sharpness"]) < 0.8
    frozen = truth[:, :1].expand_as(truth).clone()  # the agent never moves
    assert min(report_for(frozen, truth, agent_pos, truth).curves["action_following_px"]) > 0.5


def test_windows_start_after_the_context():
    assert window_starts(18, 8, first=2) == [2, 10]
    with pytest.raises(ValueError, match="2 given"):
        window_starts(9, 8, first=2)


def test_agent_mass_reads_a_faded_agent_below_one_and_a_second_agent_near_two():
    truth, agent_pos = episodes(0)
    reference = episodes(50)[0]
    assert report_for(truth, truth, agent_pos, reference).curves["agent_mass"] == pytest.approx([1.0] * 7)
    assert max(report_for(torch.zeros_like(truth), truth, agent_pos, reference).curves["agent_mass"]) == 0
    faded = truth * 0.8 + 0.2 * truth.mean(dim=(-2, -1), keepdim=True)  # every pixel a fifth towards the mean
    assert max(report_for(faded, truth, agent_pos, reference).curves["agent_mass"]) < 0.8
    doubled = torch.maximum(truth, truth.roll(shifts=(8, 8), dims=(-2, -1)))  # the agent's copy, half a frame away
    assert min(report_for(doubled, truth, agent_pos, reference).curves["agent_mass"]) > 1.7


def test_reference_features_extracted_once_give_the_same_curves():
    """Streams scored against one reference share its windows' features (a dict filled on first use)."""
    truth, pos = episodes(0)
    reference, _ = episodes(1000)
    extractor = RandomVideoFeatures(width=16)
    features = {}
    first = long_horizon_drift(truth + 0.02, reference, WINDOW, extractor, reference_features=features)
    assert sorted(features) == first.starts
    shared = long_horizon_drift(truth, reference, WINDOW, extractor, reference_features=features)
    alone = long_horizon_drift(truth, reference, WINDOW, extractor)
    assert shared.curves["fd"] == alone.curves["fd"]
