"""Feature extractors: I3D loads from a local file in both formats (and fails clearly), rand3d is fixed."""

import pytest
import torch
from torch import Tensor, nn

from lightning_aapt.metrics.extractors import I3D, RandomVideoFeatures, make_extractor, metric_name
from lightning_aapt.metrics.i3d import InceptionI3d

pytestmark = pytest.mark.unit


class ScriptedProbe(nn.Module):
    """Stands in for StyleGAN-V's TorchScript I3D: same call signature; returns what it was given."""

    def forward(self, x: Tensor, rescale: bool, resize: bool, return_features: bool) -> Tensor:
        flags = torch.tensor([float(rescale), float(resize), float(return_features)])
        stats = torch.stack([x.min(), x.max(), (x - x.round()).abs().max()])
        return torch.cat([flags, stats, torch.tensor(x.shape[1:], dtype=torch.float32)]).expand(x.shape[0], 10)


def test_torchscript_i3d_gets_stylegan_v_inputs(tmp_path):
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(ScriptedProbe()).save(str(path))
    extractor = I3D(path)
    out = extractor(torch.rand(3, 10, 3, 8, 12))  # (B, T, 3, H, W) in [0, 1]
    assert extractor.format == "torchscript" and out.shape == (3, 10)
    assert out[0, :3].tolist() == [1.0, 1.0, 1.0]  # rescale, resize, return_features
    assert out[0, 3] >= 0 and out[0, 4] <= 255 and out[0, 5] == 0  # uint8 values in [0, 255]
    assert out[0, 6:].tolist() == [3, 10, 8, 12]  # (C, T, H, W)
    assert extractor.protocol["sha256"] and metric_name(extractor) == "fvd"


def test_state_dict_i3d_loads_by_key_and_gives_400_features(tmp_path):
    torch.manual_seed(0)
    net = InceptionI3d()
    state = {f"module.{k}": v for k, v in net.state_dict().items()}  # saved from DataParallel, as often shared
    torch.save(state, tmp_path / "i3d_pretrained_400.pt")
    extractor = I3D(tmp_path / "i3d_pretrained_400.pt")
    assert extractor.format == "state_dict"
    video = torch.rand(1, 10, 3, 32, 32)
    with torch.no_grad():
        x = (torch.nn.functional.interpolate((video[0] * 255).round(), size=(224, 224), mode="bilinear")
             / 127.5 - 1).permute(1, 0, 2, 3)[None]
        expected = net.eval()(x)
    assert torch.allclose(extractor(video), expected, atol=1e-4)
    assert expected.shape == (1, 400)


def test_missing_or_wrong_weights_name_the_flag(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--fvd\.i3d_path"):
        I3D(tmp_path / "nope.pt", flag="--fvd.i3d_path")
    with pytest.raises(ValueError, match="set i3d_path"):
        make_extractor("i3d", None, flag="i3d_path")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an InceptionI3d state dict"):
        I3D(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="unknown feature extractor"):
        make_extractor("inception")


def test_rand3d_is_fixed_by_its_seed_and_named_honestly():
    video = torch.rand(4, 8, 3, 16, 16)
    a, b, c = RandomVideoFeatures(seed=0)(video), RandomVideoFeatures(seed=0)(video), RandomVideoFeatures(seed=1)(video)
    assert a.shape == (4, 128) and torch.equal(a, b) and not torch.allclose(a, c)
    assert metric_name(RandomVideoFeatures()) == "fd_rand3d"
    moved = video.roll(1, dims=1)  # the same frames in another order: motion features must notice
    assert not torch.allclose(RandomVideoFeatures()(moved), a)
