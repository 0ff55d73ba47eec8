"""A toy-world dataset encoded with a learned codec: `prepare codec` trains and writes it, `prepare toy-world`
encodes with it and records its path and SHA-256, and every reader of the dataset decodes through it; a changed
codec file is refused."""

import json

import pytest
import torch

from lightning_aapt.cli import main
from lightning_aapt.data import dataset_codec
from lightning_aapt.errors import Refusal
from lightning_aapt.world.dataset import CodecRecipe, ToyWorldSpec, spec_from_manifest

pytestmark = pytest.mark.smoke

WORLD = ["--spec.world.size=16", "--spec.world.max_sprites=2", "--spec.world.min_radius=2.0",
         "--spec.world.max_radius=3.0", "--spec.world.agent_radius=2.5", "--spec.clip_frames=4"]


def test_a_dataset_encoded_with_a_learned_codec(tmp_path):
    codec_file = tmp_path / "codec.pt"
    assert main(["prepare", "codec", "--out", str(codec_file), *WORLD, "--spec.train_clips=8",
                 "--model.spatial_factor=4", "--model.latent_channels=8", "--model.width=8", "--model.max_width=16",
                 "--training.steps=30", "--training.batch_size=8"]) == 0
    with pytest.raises(Refusal, match="already exists"):
        main(["prepare", "codec", "--out", str(codec_file), *WORLD])
    data = tmp_path / "data"
    assert main(["prepare", "toy-world", "--out", str(data), *WORLD, "--spec.train_clips=4", "--spec.val_clips=2",
                 f"--spec.codec_path={codec_file}"]) == 0
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["codec"]["name"] == "learned-ae" and manifest["codec"]["path"] == str(codec_file.resolve())
    assert manifest["shapes"]["latents"] == [4, 8, 4, 4]  # 16 px / 4, 8 channels
    codec = dataset_codec(data)
    video = codec.decode(torch.zeros(1, 2, 8, 4, 4))
    assert video.shape == (1, 2, 3, 16, 16)
    with open(codec_file, "ab") as f:  # the file changes after the dataset was encoded with it
        f.write(b"\0")
    with pytest.raises(Refusal, match="a different codec"):
        dataset_codec(data)


RECIPE = ["--spec.codec_recipe.model.spatial_factor=4", "--spec.codec_recipe.model.latent_channels=8",
          "--spec.codec_recipe.model.width=8", "--spec.codec_recipe.model.max_width=16",
          "--spec.codec_recipe.training.steps=20", "--spec.codec_recipe.training.batch_size=8"]


def test_a_world_with_a_codec_recipe_trains_its_codec_before_it_renders(tmp_path):
    codec_file, data = tmp_path / "codecs" / "toy.pt", tmp_path / "data"
    assert main(["prepare", "toy-world", "--out", str(data), *WORLD, "--spec.train_clips=4", "--spec.val_clips=2",
                 f"--spec.codec_path={codec_file}", *RECIPE, "--spec.fps=16"]) == 0
    assert codec_file.exists()  # trained first, on the world's own training clips
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["shapes"]["latents"] == [4, 8, 4, 4] and manifest["codec"]["path"] == str(codec_file.resolve())
    assert manifest["toy_world"]["codec_recipe"]["model"]["latent_channels"] == 8
    assert manifest["fps"] == 16 and spec_from_manifest(data).fps == 16  # the world's pace, read by play and videos
    assert spec_from_manifest(data).codec_recipe.training.steps == 20  # the recipe is read back
    sha = manifest["codec"]["sha256"]
    assert main(["prepare", "toy-world", "--out", str(data), *WORLD, "--spec.train_clips=4", "--spec.val_clips=2",
                 f"--spec.codec_path={codec_file}", *RECIPE, "--overwrite=true"]) == 0
    assert json.loads((data / "manifest.json").read_text())["codec"]["sha256"] == sha  # an existing file is kept
    with pytest.raises(Refusal, match="latent_channels=12"):  # a file of another shape is not taken for the recipe
        main(["prepare", "toy-world", "--out", str(tmp_path / "other"), *WORLD, "--spec.train_clips=4",
              "--spec.val_clips=2", f"--spec.codec_path={codec_file}", *RECIPE,
              "--spec.codec_recipe.model.latent_channels=12"])
    with pytest.raises(ValueError, match="codec_recipe needs a codec_path"):
        ToyWorldSpec(codec_recipe=CodecRecipe())
