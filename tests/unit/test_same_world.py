"""A dataset folder holding another version of the configured toy world is refused, not trained on."""

import dataclasses
import json

import pytest

from datamodules.web_video import WebVideoDataModule, check_same_world
from lightning_aapt.errors import ConfigError
from tests.conftest import TINY_SPEC

pytestmark = pytest.mark.unit


def test_a_folder_rendered_from_other_world_settings_is_refused_by_name(toy_data):
    check_same_world(toy_data, TINY_SPEC)  # the world it was rendered from
    pushed = dataclasses.replace(TINY_SPEC, world=dataclasses.replace(TINY_SPEC.world, max_speed=0.0,
                                                                      agent_pushes=True))
    with pytest.raises(ConfigError, match=r"data_dir=.*other settings than data.toy_world \(max_speed 1.2 -> 0.0, "
                                          r"agent_pushes False -> True\): move that folder away"):
        check_same_world(toy_data, pushed)


def test_a_manifest_older_than_a_world_field_reads_it_as_its_default(toy_data, tmp_path):
    manifest = json.loads((toy_data / "manifest.json").read_text())
    for key in ("agent_pushes", "sprite_damping", "separated"):  # fields added after such a dataset was written
        del manifest["toy_world"]["world"][key]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    check_same_world(tmp_path, TINY_SPEC)


def test_the_resume_fingerprint_is_the_dataset_not_how_long_it_took(toy_data, tmp_path):
    import shutil

    copy = tmp_path / "again"
    shutil.copytree(toy_data, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "made_by": {"command": "x", "seconds": 1.0}}))
    settings = WebVideoDataModule(str(toy_data), num_frames=6, batch_size=2).stream_settings()
    assert WebVideoDataModule(str(copy), num_frames=6, batch_size=2).stream_settings() == settings
    (copy / "manifest.json").write_text(json.dumps({**manifest, "fps": 2 * manifest["fps"]}))
    assert WebVideoDataModule(str(copy), num_frames=6, batch_size=2).stream_settings() != settings
