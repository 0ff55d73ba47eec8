"""What a resume accepts: the checkpoint of its own stage and backbone, with run settings free to change.
(SIGKILL at random moments + resume = the uninterrupted run: `test_faults.py`; every refusal: `test_bad_input.py`.)"""

import dataclasses

import pytest
import torch

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.checkpoints import recorded_backbone
from lightning_aapt.stages import BidirectionalPretraining, DiffusionAdaptation
from tests.helpers_cli import fit, tiny_config
from tests.helpers_parallel import scalars

pytestmark = pytest.mark.smoke
DIMS = {"latent_channels": 48, "text_dim": 64, "control_dim": 2, "bidirectional": False, "recycled_input": True}


def test_a_stage_refuses_a_checkpoint_of_another_backbone_or_stage(toy_data, tmp_path):
    fit(tiny_config("stage1", tmp_path, toy_data, steps=1, init_from=None))
    ckpt = torch.load(tmp_path / "stage1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["stage"] == "DiffusionAdaptation"
    other = DiffusionAdaptation(BackboneConfig.preset("tiny", dim=64, num_heads=2, **DIMS))
    with pytest.raises(ValueError, match="dim: checkpoint 48 vs config 64"):
        other.on_load_checkpoint(ckpt)
    bidirectional = dataclasses.replace(recorded_backbone(ckpt["backbone_config"]), bidirectional=True,
                                        recycled_input=False)
    with pytest.raises(ValueError, match=r"a DiffusionAdaptation checkpoint, but the config's model\.class_path is "
                                         "BidirectionalPretraining"):
        BidirectionalPretraining(bidirectional).on_load_checkpoint(ckpt)
    # How attention runs is not the architecture: another backend resumes the same checkpoint, and a checkpoint
    # that still records run settings in its backbone config (written before they left it) loads.
    same = DiffusionAdaptation(recorded_backbone(ckpt["backbone_config"]), attention_backend="reference")
    ckpt["backbone_config"].update(attention_backend="sdpa", max_cache_frames=2048)
    same.on_load_checkpoint(ckpt)


def test_resume_may_change_how_the_stage_runs_and_for_how_long(toy_data, tmp_path):
    config = tiny_config("stage1", tmp_path, toy_data, steps=2, init_from=None)
    fit(config)
    ckpt = tmp_path / "stage1" / "checkpoints" / "last.ckpt"
    fit(config, "--ckpt_path", str(ckpt), "--model.init_args.attention_backend=reference", "--trainer.max_steps=4")
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == 4
    assert len(scalars(tmp_path / "stage1", "train/loss")) == 4  # two steps, then two more
