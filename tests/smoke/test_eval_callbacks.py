"""FVDCallback and LongHorizonDriftCallback in a tiny run: numbers, protocol, cache, curves and plot."""

import json

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers_cli import fit, tiny_config

pytestmark = pytest.mark.smoke


def test_fd_and_drift_are_logged_with_their_protocol(toy_data, tmp_path):
    config = tiny_config("stage1", tmp_path, toy_data, steps=4, val_every=2, init_from=None, sample_steps=2)
    spec = yaml.safe_load(config.read_text())
    spec["trainer"]["limit_val_batches"] = 2
    spec["trainer"]["callbacks"] += [
        {"class_path": "callbacks.FVDCallback",
         "init_args": {"num_clips": 4, "cache_dir": str(tmp_path / "cache")}},
        {"class_path": "callbacks.LongHorizonDriftCallback",
         "init_args": {"horizon": 3, "window_frames": 4, "num_clips": 3}}]
    config.write_text(yaml.safe_dump(spec))
    fit(config)

    run = tmp_path / "stage1"
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"val/fd_rand3d", "val/kd_rand3d", "val/drift_ratio", "val/drift/pixel_mse_truth_ratio",
            "val/drift/agent_error_px_ratio", "val/drift/latent_std_ratio_ratio", "val/drift/objects_kept_last",
            "val/drift/median_lifetime", "val/transfer/objects_a_out_1", "val/transfer/agent_error_vs_copy"} <= scalars
    assert "val/fvd" not in scalars  # the toy extractor is not I3D
    assert len(events.Scalars("val/fd_rand3d")) == 2  # two validations after the sanity check
    assert all(s.value > 0 for s in events.Scalars("val/fd_rand3d"))
    assert "val/drift_plot" in events.Tags()["images"]
    assert any(t.startswith("drift_curves/fd_rand3d/") for t in scalars)

    protocol = json.loads((run / "fd_protocol.json").read_text())
    assert protocol["metric"] == "fd_rand3d" and protocol["clips"] == 4 and protocol["clip_frames"] == 6
    assert protocol["resolution"] == [16, 16] and protocol["seed"] == 0
    assert len(list((tmp_path / "cache").glob("fd_rand3d-*.pt"))) == 1  # real features extracted once

    drift = json.loads(sorted((run / "drift").glob("step*.json"))[-1].read_text())
    assert drift["starts"] == [2, 6, 10, 14] and len(drift["curves"]["pixel_mse_truth"]) == 4  # after 2 context frames
    assert {"sharpness", "action_following_px", "agent_error_px", "objects_kept", "detail_kept"} <= set(drift["curves"])
    assert "median_lifetime" in drift["summary"]
