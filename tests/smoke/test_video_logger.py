"""TensorBoard holds the scalars and the animated GIFs a run logs (read back from the event files)."""

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers_cli import fit, tiny_config

pytestmark = pytest.mark.smoke


def test_event_files_hold_scalars_and_gifs(toy_data, tmp_path):
    config = tiny_config("stage1", tmp_path, toy_data, init_from=None, sample_steps=2)
    spec = yaml.safe_load(config.read_text())
    spec["trainer"]["callbacks"].append({"class_path": "callbacks.VideoLogger",
                                         "init_args": {"num_clips": 2, "scale": 2}})
    config.write_text(yaml.safe_dump(spec))
    fit(config)
    events = EventAccumulator(str(tmp_path / "stage1"), size_guidance={"images": 0}).Reload()
    assert {"train/loss", "val/loss"} <= set(events.Tags()["scalars"])
    assert {"val/video_0", "val/video_1"} <= set(events.Tags()["images"])
    image = events.Images("val/video_0")[-1]
    assert image.encoded_image_string[:6] == b"GIF89a"
    assert (image.width, image.height) == (2 * 2 * 16, 2 * 16)  # real | generated, 16-pixel frames, scale 2
    assert len(list((tmp_path / "stage1" / "videos").glob("step*_clip*.mp4"))) == 2
