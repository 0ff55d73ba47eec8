"""Video feature extractors for Fréchet and kernel distances (docs/architecture.md §7).

Notation: B clips, T frames, H/W pixels, D feature width. Every extractor maps videos (B, T, 3, H, W) in [0, 1]
to features (B, D) and carries a `name` (the metric is `fvd` for I3D, `fd_<name>` otherwise) and a `protocol`
dict recorded beside every number.

- `I3D`: the Kinetics-400 I3D of FVD, from a file the user gives (never downloaded). Two formats load:
  StyleGAN-V's TorchScript `i3d_torchscript.pt` (the tf.hub weights of the original FVD), called as StyleGAN-V
  calls it: frames quantised to uint8 values, (B, 3, T, H, W), `rescale=True, resize=True,
  return_features=True`; or a PyTorch state dict of `InceptionI3d` (`i3d_pretrained_400.pt`, the original
  I3D release), with the same preprocessing done here: uint8 quantisation, bilinear resize of every frame to
  224 x 224, [0, 255] -> [-1, 1]. The two weight sets differ, so their numbers are not interchangeable: the
  protocol names the file and its SHA-256.
- `RandomVideoFeatures` ("rand3d"): a fixed, seeded, untrained 3-D conv net. Nothing ships I3D or Inception
  weights in a wheel (torch-fidelity, pytorch-fid, cd-fvd and torchvision all download them at run time), so
  for the toy default and offline CI we use random features, which are known to rank generators sensibly but
  are not FVD. Its numbers compare only with the same seed, width and clip length.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_aapt.metrics.i3d import MIN_FRAMES, InceptionI3d


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def quantise(videos: Tensor) -> Tensor:
    """[0, 1] -> uint8 values as float (B, T, 3, H, W): generated and real videos go through the same rounding."""
    return (videos.float().clamp(0, 1) * 255).round()


class I3D(nn.Module):
    """FVD's I3D from a local file (TorchScript or state dict); features (B, 400).

    Args:
        path: the weights file; the flag that sets it is named in the error when it is missing or unreadable.
        flag: how the user set `path` (for error messages), e.g. "--i3d_path".
        batch_size: clips per forward pass (I3D at 224 x 224 is memory hungry).
    """

    name = "i3d"

    def __init__(self, path: str | Path, flag: str = "i3d_path", batch_size: int = 8) -> None:
        super().__init__()
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"I3D weights not found at {path} (set by {flag}). Nothing downloads them: give the path of "
                f"StyleGAN-V's i3d_torchscript.pt or a state dict of InceptionI3d (i3d_pretrained_400.pt), or "
                f"use another extractor (e.g. 'rand3d'), which logs fd_<extractor> instead of fvd.")
        self.batch_size = batch_size
        self.register_buffer("anchor", torch.empty(0), persistent=False)  # follows .to(device)
        self.sha256 = file_sha256(path)
        try:
            self.net, self.format = torch.jit.load(str(path), map_location="cpu").eval(), "torchscript"
        except RuntimeError:
            self.net, self.format = self._from_state_dict(path, flag), "state_dict"
        self.file = path.name

    @staticmethod
    def _from_state_dict(path: Path, flag: str) -> nn.Module:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path} (set by {flag}) is neither a TorchScript module nor a torch state dict: "
                             f"{err}") from err
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise ValueError(f"{path} (set by {flag}) holds a {type(state).__name__}, not a state dict")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        net = InceptionI3d(num_classes=state["logits.conv3d.weight"].shape[0] if "logits.conv3d.weight" in state
                           else 400)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path} (set by {flag}) is not an InceptionI3d state dict: missing keys "
                             f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected keys "
                             f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        return net.eval()

    @property
    def protocol(self) -> dict:
        return {"extractor": "i3d", "weights": self.file, "sha256": self.sha256, "format": self.format,
                "preprocessing": "uint8 quantisation, bilinear resize to 224x224, [-1, 1]", "features": "logits"}

    @torch.no_grad()
    def forward(self, videos: Tensor) -> Tensor:
        if videos.shape[1] < MIN_FRAMES:
            raise ValueError(f"I3D needs clips of at least {MIN_FRAMES} frames (FVD protocol: 16); got "
                             f"{videos.shape[1]}")
        device = self.anchor.device
        features = []
        for chunk in videos.split(self.batch_size):
            x = quantise(chunk).to(device).permute(0, 2, 1, 3, 4)  # (b, 3, T, H, W) in [0, 255]
            if self.format == "torchscript":
                features.append(self.net(x, rescale=True, resize=True, return_features=True))
            else:
                b, c, t = x.shape[:3]
                frames = x.transpose(1, 2).reshape(b * t, c, *x.shape[-2:])  # (b T, 3, H, W)
                frames = F.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False)
                x = frames.reshape(b, t, c, 224, 224).transpose(1, 2) / 127.5 - 1  # (b, 3, T, 224, 224)
                features.append(self.net(x))
        return torch.cat(features).float().cpu()  # (B, 400)


class RandomVideoFeatures(nn.Module):
    """A fixed random 3-D conv net ("rand3d"): features (B, 2 * width) = per-channel mean and std over space
    and time of the last layer. Space-time kernels see colour, texture and motion; nothing is trained.

    Args:
        seed: weights are drawn from this seed (so numbers compare across runs and machines).
        width: channels of every layer.
        depth: conv layers, each (2, 3, 3) over (T, H, W) with spatial stride 2 after the first.
    """

    name = "rand3d"

    def __init__(self, seed: int = 0, width: int = 64, depth: int = 3) -> None:
        super().__init__()
        self.seed, self.width, self.depth = seed, width, depth
        gen = torch.Generator().manual_seed(seed)
        self.weights = []  # (width, in, 2, 3, 3), He-normal, so activations neither vanish nor explode
        channels = 3
        for _ in range(depth):
            w = torch.randn(width, channels, 2, 3, 3, generator=gen) * (2 / (channels * 18)) ** 0.5
            self.weights.append(w)
            channels = width

    @property
    def protocol(self) -> dict:
        return {"extractor": "rand3d", "seed": self.seed, "width": self.width, "depth": self.depth,
                "preprocessing": "uint8 quantisation, [-1, 1], native resolution", "features": "mean+std"}

    @torch.no_grad()
    def forward(self, videos: Tensor) -> Tensor:
        x = (quantise(videos) / 127.5 - 1).permute(0, 2, 1, 3, 4)  # (B, 3, T, H, W)
        for i, w in enumerate(self.weights):
            x = F.leaky_relu(F.conv3d(x, w.to(x), stride=(1, 1 if i == 0 else 2, 1 if i == 0 else 2)), 0.2)
        x = x.flatten(2)  # (B, width, T' H' W')
        return torch.cat([x.mean(-1), x.std(-1)], dim=1)  # (B, 2 width)


def make_extractor(name: str, i3d_path: str | None = None, flag: str = "i3d_path") -> nn.Module:
    """The extractor called `name` ("i3d" needs `i3d_path`; "rand3d")."""
    if name == "i3d":
        if not i3d_path:
            raise ValueError(f"extractor 'i3d' needs the weights file: set {flag} (nothing downloads it)")
        return I3D(i3d_path, flag=flag)
    if name == "rand3d":
        return RandomVideoFeatures()
    raise ValueError(f"unknown feature extractor {name!r}; expected 'i3d' or 'rand3d'")


def metric_name(extractor: nn.Module) -> str:
    """`fvd` only for I3D; `fd_<extractor>` for anything else."""
    return "fvd" if extractor.name == "i3d" else f"fd_{extractor.name}"
