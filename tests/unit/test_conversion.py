"""Converting a pretrained bidirectional model: new input channels start at zero and change nothing."""

import pytest
import torch

from lightning_aapt.backbone import convert, convert_to_causal
from tests.helpers import LATENT, randomize, tiny_model

pytestmark = pytest.mark.unit


def test_zero_initialised_new_inputs_leave_a_bidirectional_model_unchanged():
    bidi = tiny_model(bidirectional=True, recycled_input=False, control_dim=0)
    widened = convert(bidi, recycled_input=True, control_dim=3)
    assert widened.recycled_embed.weight.abs().sum() == 0 and widened.control_embed.weight.abs().sum() == 0
    B, F = 2, 5
    x, t, text = torch.randn(B, F, 4, *LATENT), torch.rand(B, F), torch.randn(B, 3, 16)
    with torch.no_grad():
        original = bidi(x, t, None, text)
        assert original.abs().mean() > 0.1
        out = widened(x, t, torch.randn_like(x), text, torch.randn(B, F, 3))
    assert torch.equal(out, original)


def test_bidirectional_and_causal_forms_agree_on_one_frame():
    bidi = tiny_model(bidirectional=True, recycled_input=False)
    causal = convert_to_causal(bidi, window_frames=4, sink_frames=1)
    assert not causal.cfg.bidirectional and causal.cfg.recycled_input
    x, t, text = torch.randn(2, 1, 4, *LATENT), torch.rand(2, 1), torch.randn(2, 3, 16)
    with torch.no_grad():
        torch.testing.assert_close(causal(x, t, torch.randn_like(x), text), bidi(x, t, None, text),
                                   atol=1e-5, rtol=1e-5)
        # trained recycled weights do change the output: the test above is not vacuous
        randomize(causal.recycled_embed, seed=5)
        assert not torch.allclose(causal(x, t, torch.randn_like(x), text), bidi(x, t, None, text))


def test_conversion_refuses_mismatched_weights():
    model = tiny_model(control_dim=3)
    with pytest.raises(ValueError, match="cannot convert"):
        convert(model, dim=64, num_heads=2)


def test_causal_model_rejects_missing_recycled_frames():
    model = tiny_model()
    with pytest.raises(ValueError, match="recycled must have the latents' shape"):
        model(torch.randn(1, 2, 4, *LATENT), torch.rand(1, 2), None, torch.randn(1, 3, 16))
