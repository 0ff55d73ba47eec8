"""`parallel` switches without a mesh: activation checkpointing and torch.compile compute the same function and
gradients as the plain model, and checkpoints keep their parameter names."""

import pytest
import torch

from lightning_aapt.backbone import CausalVideoDiT
from lightning_aapt.parallel import ParallelConfig, parallelize
from tests.helpers import tiny_inputs, tiny_model

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize("switches", [{"activation_checkpointing": True},
                                      {"compile": True, "activation_checkpointing": True}])
def test_switches_keep_the_function_and_gradients(switches):
    plain = tiny_model(window_frames=4, sink_frames=1, control_dim=3)
    changed = CausalVideoDiT(plain.cfg)
    changed.load_state_dict(plain.state_dict())
    parallelize([changed], None, ParallelConfig(**switches))
    assert changed.state_dict().keys() == plain.state_dict().keys()
    inputs = tiny_inputs(plain.cfg, 2, 7)
    outs = []
    for net in (plain, changed):
        out = net(**inputs)
        out.pow(2).mean().backward()
        outs.append((out.detach(), [p.grad for p in net.parameters()]))
    torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(outs[1][1], outs[0][1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_bf16_without_a_mesh_names_the_fix():
    with pytest.raises(ValueError, match=r"trainer\.precision=bf16-mixed"):
        parallelize([tiny_model()], None, ParallelConfig(precision="bf16"))
