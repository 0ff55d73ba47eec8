"""Stage 1's loss: noise on the context changes training only, drawn from the step's own random streams."""

import pytest
import torch

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.data import VideoBatch
from lightning_aapt.stages import DiffusionAdaptation

pytestmark = pytest.mark.unit


def test_context_noise_changes_the_training_loss_only():
    cfg = BackboneConfig.preset("tiny", bidirectional=False, recycled_input=True, window_frames=4, sink_frames=1)
    torch.manual_seed(0)
    clean = DiffusionAdaptation(cfg)
    for p in clean.model.parameters():  # a trained-looking model: the zero-initialised output would hide the input
        p.data.normal_(0, 0.1)
    noisy = DiffusionAdaptation(cfg, context_noise=0.5)
    noisy.load_state_dict(clean.state_dict())
    batch = VideoBatch(torch.randn(2, 4, cfg.latent_channels, 4, 4), torch.randn(2, 3, cfg.text_dim), None)
    t, noise = torch.rand(2, 1).expand(2, 3), torch.randn(2, 3, cfg.latent_channels, 4, 4)
    with torch.no_grad():
        trained = noisy.per_frame_losses(batch, t, noise)
        assert not torch.allclose(trained, clean.per_frame_losses(batch, t, noise))
        torch.testing.assert_close(noisy.per_frame_losses(batch, t, noise), trained)  # the same draw each call
        clean.eval(), noisy.eval()
        torch.testing.assert_close(noisy.per_frame_losses(batch, t, noise), clean.per_frame_losses(batch, t, noise))
    with pytest.raises(ValueError, match=r"context_noise must be in \[0, 1\]"):
        DiffusionAdaptation(cfg, context_noise=1.5)
