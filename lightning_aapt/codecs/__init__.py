"""Latent codecs: the protocol every video autoencoder implements, and the toy codec."""

from lightning_aapt.codecs.base import LatentCodec
from lightning_aapt.codecs.toy import ToyCodec

__all__ = ["LatentCodec", "ToyCodec"]
