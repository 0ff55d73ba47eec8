"""Mask rule, positions and attention paths against slow, literal references."""

import pytest
import torch

from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT
from lightning_aapt.backbone.attention import (
    apply_rotary,
    attention_layout,
    block_causal_attention,
    frame_visible,
    masked_sdpa,
    reference_attention,
    reference_distances,
    rotary_tables,
    token_mask,
)
from tests.helpers import tiny_inputs, tiny_model

pytestmark = pytest.mark.unit


def dense_rule(q: int, k: int, window: int | None, sink: int) -> bool:
    """The mask rule of docs/architecture.md §3, spelled out."""
    if k > q:
        return False
    return window is None or q - k < window or k < sink


@pytest.mark.parametrize(("window", "sink"), [(None, 0), (None, 1), (1, 0), (4, 1), (3, 2), (5, 0)])
def test_mask_matches_rule(window, sink):
    cfg = BackboneConfig.preset("tiny", window_frames=window, sink_frames=sink)
    frames = tuple(range(12))
    mask = token_mask(attention_layout(frames, frames, cfg), 3, window, torch.device("cpu"))
    expected = torch.tensor([[dense_rule(q, k, window, sink) for k in frames] for q in frames])
    expected = expected.repeat_interleave(3, 0).repeat_interleave(3, 1)  # every token of a frame alike
    assert torch.equal(mask, expected)
    q, k = torch.tensor(frames)[:, None], torch.tensor(frames)[None]
    assert torch.equal(frame_visible(q, k, window, k < sink), expected[::3, ::3])


@pytest.mark.parametrize(("window", "sink"), [(4, 1), (3, 2), (5, 0), (None, 1)])
def test_mask_of_later_query_frames_matches_rule(window, sink):
    """Queries 9..11 over the keys a cache holds for them (rebased positions, sinks clamped)."""
    cfg = BackboneConfig.preset("tiny", window_frames=window, sink_frames=sink)
    q_frames = (9, 10, 11)
    k_frames = tuple(k for k in range(12) if any(dense_rule(q, k, window, sink) for q in q_frames))
    mask = token_mask(attention_layout(q_frames, k_frames, cfg), 1, window, torch.device("cpu"))
    expected = torch.tensor([[dense_rule(q, k, window, sink) for k in k_frames] for q in q_frames])
    assert torch.equal(mask, expected)


def test_mask_is_none_when_everything_is_visible():
    cfg = BackboneConfig.preset("tiny", window_frames=4, sink_frames=1)
    assert token_mask(attention_layout((7,), (0, 4, 5, 6, 7), cfg), 4, 4, torch.device("cpu")) is None


def test_layout_of_a_steady_stream_repeats():
    """Every one-frame step past the window's fill has the same layout (so one table build serves them all)."""
    cfg = BackboneConfig.preset("tiny", window_frames=4, sink_frames=2)
    layouts = {attention_layout((f,), (0, 1, *range(f - 3, f + 1)), cfg) for f in range(6, 200)}
    assert len(layouts) == 1


@pytest.mark.parametrize(("window", "sink"), [(4, 1), (3, 2), (5, 3), (None, 1)])
def test_positions_follow_the_layout(window, sink):
    """The closed-form positions give every visible key the distance of the literal layout."""
    cfg = BackboneConfig.preset("tiny", window_frames=window, sink_frames=sink)
    frames = tuple(range(20))
    for q in frames:
        layout = attention_layout((q,), frames, cfg)
        for k, distance in reference_distances(q, frames, cfg).items():
            if layout.k_sink is not None and layout.k_sink[k] >= 0:
                assert layout.q_sink[0] - layout.k_sink[k] == distance, (q, k)
            else:
                assert layout.q[0] - layout.k[k] == distance, (q, k)


def test_sink_distance_with_one_sink_is_min_q_window():
    cfg = BackboneConfig.preset("tiny", window_frames=4, sink_frames=1)
    for q in range(12):
        assert reference_distances(q, tuple(range(q + 1)), cfg)[0] == min(q, 4)


@pytest.mark.parametrize(("window", "sink", "head_dim"),
                         [(None, 1, 24), (4, 1, 24), (3, 2, 24), (4, 0, 24), (4, 1, 20)])
def test_masked_attention_equals_dense_reference(window, sink, head_dim):
    """head_dim 20 with sink positions: q/k are 20 + 8 = 28 wide, zero-padded to 32 (exact)."""
    cfg = BackboneConfig.preset("tiny", window_frames=window, sink_frames=sink, dim=2 * head_dim)
    gen = torch.Generator().manual_seed(0)
    B, nh, F, N, hd = 2, cfg.num_heads, 11, 4, cfg.head_dim
    q, k, v = (torch.randn(B, nh, F, N, hd, generator=gen) for _ in range(3))
    frames = tuple(range(F))
    fast = block_causal_attention(q, k, v, attention_layout(frames, frames, cfg), (2, 2), cfg)
    slow = reference_attention(q, k, v, frames, frames, (2, 2), cfg)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("window", "sink"), [(None, 1), (4, 1)])
def test_model_mask_path_equals_reference_path(window, sink):
    model = tiny_model(window_frames=window, sink_frames=sink, control_dim=3)
    reference = CausalVideoDiT(model.cfg, attention_backend="reference")
    reference.load_state_dict(model.state_dict())
    inputs = tiny_inputs(model.cfg, batch=2, frames=11)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs), reference(**inputs), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("window", "sink"), [(None, 1), (4, 1)])
def test_future_frames_never_change_the_past(window, sink):
    model = tiny_model(window_frames=window, sink_frames=sink, control_dim=3)
    inputs = tiny_inputs(model.cfg, batch=2, frames=9)
    with torch.no_grad():
        before = model(**inputs)
        for f in range(8):
            perturbed = {k: (v if k == "text" else v.clone()) for k, v in inputs.items()}
            for name in ("latents", "recycled", "controls"):
                perturbed[name][:, f + 1] += 3.0
            perturbed["timesteps"][:, f + 1] = 1 - perturbed["timesteps"][:, f + 1]
            after = model(**perturbed)
            assert torch.equal(after[:, : f + 1], before[:, : f + 1]), f"frame {f + 1} leaked into the past"
            assert not torch.allclose(after[:, f + 1], before[:, f + 1])


def test_bidirectional_attention_sees_the_future():
    model = tiny_model(bidirectional=True, recycled_input=False)
    inputs = tiny_inputs(model.cfg, batch=1, frames=4)
    with torch.no_grad():
        before = model(**inputs)
        inputs["latents"][:, 3] += 3.0
        assert not torch.allclose(model(**inputs)[:, 0], before[:, 0])


def test_flex_backend_refuses_cpu():
    model = tiny_model(window_frames=4, attention_backend="flex")
    with pytest.raises(RuntimeError, match="attention_backend='flex' needs CUDA"):
        model(**tiny_inputs(model.cfg, batch=1, frames=3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention path needs CUDA")
def test_flex_equals_sdpa_on_cuda():
    model = tiny_model(window_frames=4, sink_frames=1, control_dim=3).cuda()
    flex = CausalVideoDiT(model.cfg, attention_backend="flex").cuda()
    flex.load_state_dict(model.state_dict())
    sdpa = CausalVideoDiT(model.cfg, attention_backend="sdpa").cuda()
    sdpa.load_state_dict(model.state_dict())
    inputs = {k: None if v is None else v.cuda() for k, v in tiny_inputs(model.cfg, 2, 11).items()}
    with torch.no_grad():
        torch.testing.assert_close(flex(**inputs), sdpa(**inputs), atol=1e-4, rtol=1e-4)


def _cuda_pair(**changes):
    model = tiny_model(**changes)
    nets = []
    for backend in ("flex", "sdpa"):
        net = CausalVideoDiT(model.cfg, attention_backend=backend).cuda()
        net.load_state_dict(model.state_dict())
        nets.append(net)
    return nets


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention path needs CUDA")
@pytest.mark.parametrize("layout", [{"window_frames": 4, "sink_frames": 1}, {"window_frames": None, "sink_frames": 0},
                                    {"window_frames": 3, "sink_frames": 2}])
def test_flex_gradients_equal_sdpa_on_cuda(layout):
    flex, sdpa = _cuda_pair(control_dim=3, **layout)
    inputs = {k: None if v is None else v.cuda() for k, v in tiny_inputs(flex.cfg, 2, 9).items()}
    grads = []
    for net in (flex, sdpa):
        net.zero_grad()
        out = net(**inputs)
        (out.float().pow(2).mean()).backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for g_flex, g_sdpa in zip(*grads, strict=True):
        torch.testing.assert_close(g_flex, g_sdpa, atol=1e-4, rtol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_flex_is_close_to_fp32_sdpa():
    flex, sdpa = _cuda_pair(window_frames=4, sink_frames=1)
    inputs = {k: None if v is None else v.cuda() for k, v in tiny_inputs(flex.cfg, 2, 9).items()}
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        low = flex(**inputs).float()
    with torch.no_grad():
        full = sdpa(**inputs)
    assert (low - full).abs().max() < 0.05 * full.abs().max()


@pytest.mark.parametrize(("head_dim", "width"), [(24, 32), (20, 32), (64, 88), (128, 176)])
def test_rotated_queries_and_keys_are_a_multiple_of_8_wide(head_dim, width):
    """The sink layout widens q/k by the temporal channels (128 + 44 = 172 for Wan-like heads): zero channels
    make them a multiple of 8, so the fused SDPA kernels can take the call."""
    cfg = BackboneConfig.preset("tiny", window_frames=4, sink_frames=1, dim=2 * head_dim)
    q = torch.randn(1, cfg.num_heads, 1, 4, head_dim)
    k = torch.randn(1, cfg.num_heads, 4, 4, head_dim)
    layout = attention_layout((6,), (0, 4, 5, 6), cfg)
    qr, kr = apply_rotary(q, k, rotary_tables(layout, (2, 2), cfg, q.device), cfg.rope_split[0])
    assert qr.shape[-1] == kr.shape[-1] == width
    assert qr[..., head_dim + cfg.rope_split[0]:].abs().sum() == 0


def test_values_padded_to_the_query_width_change_nothing():
    """What CUDA does for an unmasked step (so flash/cuDNN take it) equals the plain call, here on the CPU."""
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 5, 176, generator=gen), torch.randn(2, 3, 9, 176, generator=gen)
    v = torch.randn(2, 3, 9, 128, generator=gen)
    padded = masked_sdpa(q, k, v, None, 128**-0.5, equal_widths=True)
    assert padded.shape == (2, 3, 5, 128)
    torch.testing.assert_close(padded, masked_sdpa(q, k, v, None, 128**-0.5, equal_widths=False))
