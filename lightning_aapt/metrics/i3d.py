"""`InceptionI3d`: the Kinetics-400 Inception-v1 I3D network (Carreira & Zisserman 2017), laid out so that the
common PyTorch state dicts load by key (`i3d_pretrained_400.pt` as used by VideoGPT / TATS / MCVD FVD code).

Notation: B clips, T frames, H/W pixels. Input (B, 3, T, 224, 224) in [-1, 1]; output the 400 class logits
averaged over the remaining time steps (B, 400) — the features FVD compares.

TensorFlow "SAME" padding is computed from the input size at every layer (not fixed in the constructor), as the
original; this is what makes ported weights produce the original activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def same_padding(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, ...]:
    """F.pad amounts (w_front, w_back, h_front, h_back, t_front, t_back) for TF "SAME" over (T, H, W)."""
    pads = []
    for s, k, st in zip(size, kernel, stride, strict=True):
        total = max(k - (st if s % st == 0 else s % st), 0)
        pads.append((total // 2, total - total // 2))
    return tuple(p for pair in reversed(pads) for p in pair)


class Unit3D(nn.Module):
    """Conv3d (SAME padding, no bias) + BatchNorm (eps 1e-3) + ReLU; the logits layer has bias and neither."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), norm_act: bool = True) -> None:
        super().__init__()
        self.kernel, self.stride, self.norm_act = kernel, stride, norm_act
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=not norm_act)
        if norm_act:
            self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride)))
        return F.relu(self.bn(x)) if self.norm_act else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        # Zero padding, as the original port: inputs of max pools follow a ReLU, so zeros never win wrongly.
        x = F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | maxpool -> 1x1, concatenated on channels."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0])
        self.b1a = Unit3D(in_channels, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, widths[5])

    @property
    def out_channels(self) -> int:
        return self.b0.conv3d.out_channels + self.b1b.conv3d.out_channels + self.b2b.conv3d.out_channels \
            + self.b3b.conv3d.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


MIXED = {  # name: branch widths (b0, b1a, b1b, b2a, b2b, b3b)
    "Mixed_3b": (64, 96, 128, 16, 32, 32), "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64), "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64), "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128), "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
MIN_FRAMES = 9  # four temporal halvings must leave >= 2 steps for the (2, 7, 7) average pool


class InceptionI3d(nn.Module):
    """I3D up to its class logits (Kinetics-400: 400 classes); `forward` returns (B, num_classes)."""

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        width = 192
        for name, widths in MIXED.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            setattr(self, name, InceptionModule(width, widths))
            width = getattr(self, name).out_channels
        self.logits = Unit3D(width, num_classes, norm_act=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] < MIN_FRAMES or x.shape[-2:] != (224, 224):
            raise ValueError(f"InceptionI3d needs (B, 3, T >= {MIN_FRAMES}, 224, 224); got {tuple(x.shape)}")
        for module in self.children():
            if module is self.logits:
                break
            x = module(x)  # ... -> (B, 1024, T/8, 7, 7)
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # (B, 1024, T/8 - 1, 1, 1); dropout is off in eval
        return self.logits(x).flatten(2).mean(-1)  # (B, num_classes)
