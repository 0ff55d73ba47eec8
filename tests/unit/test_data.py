"""The data contract: batches, shapes and manifests read the same way by every part."""

import pytest
import torch

from lightning_aapt.data import DataError, Manifest, VideoBatch, dataset_codec, first_clips, read_manifest
from lightning_aapt.world.dataset import ToyWorldSpec, spec_from_manifest
from tests.conftest import TINY_SPEC

pytestmark = pytest.mark.unit


def batch(n: int) -> VideoBatch:
    return VideoBatch(torch.arange(n).float().reshape(n, 1, 1, 1, 1).expand(n, 2, 1, 1, 1), torch.zeros(n, 3, 4),
                      None, keys=[f"k{i}" for i in range(n)], meta=[{}] * n)


def test_take_cuts_every_per_clip_field():
    cut = batch(5).take(2)
    assert len(cut) == 2 and cut.keys == ["k0", "k1"] and len(cut.meta) == 2 and cut.text.shape[0] == 2
    assert cut.controls is None


def test_first_clips_stops_once_enough_clips_are_seen():
    seen = []

    def loader():
        for i in range(10):
            seen.append(i)
            yield batch(3)

    assert len(first_clips(loader(), 7)) == 3 and seen == [0, 1, 2]


def test_manifest_without_shapes_is_named():
    with pytest.raises(DataError, match=r"data/x/manifest\.json: no .shapes."):
        Manifest.from_record({"codec": {}}, where="data/x/manifest.json")


def test_the_toy_spec_and_codec_come_back_from_the_manifest(toy_data):
    assert spec_from_manifest(toy_data) == TINY_SPEC
    shapes = read_manifest(toy_data).shapes
    assert shapes.latent_channels == dataset_codec(toy_data).latent_channels == TINY_SPEC.codec().latent_channels
    record = {k: v for k, v in read_manifest(toy_data).record.items() if k != "toy_world"}
    with pytest.raises(DataError, match="not a toy-world dataset"):
        ToyWorldSpec.from_manifest(Manifest.from_record(record))
