"""StreamingGenerator: one evaluation per frame, the same frames as a parallel pass, K-step sampling."""

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lightning_aapt.backbone.attention import rotary_tables, token_mask
from lightning_aapt.inference import OverlappedDecoder, StreamingGenerator
from lightning_aapt.inference.teacher_forcing import teacher_forced_frames, teacher_forcing
from tests.helpers import LATENT, tiny_model

pytestmark = pytest.mark.unit


def count_forwards(model):
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("window", [None, 4])
def test_one_nfe_stream_equals_one_parallel_pass(window):
    model = tiny_model(window_frames=window, sink_frames=1, control_dim=3)
    calls = count_forwards(model)
    gen = StreamingGenerator(model, latent_size=LATENT, steps=1)
    text, controls = torch.randn(2, 5, 16), torch.randn(2, 11, 3)
    noises = torch.randn(2, 11, 4, *LATENT)
    gen.reset(text)
    frames = torch.stack([gen.step(controls[:, f], noises[:, f]) for f in range(11)], dim=1)
    assert len(calls) == 11  # one network evaluation per frame
    recycled = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1)
    with torch.no_grad():
        parallel = noises - model(noises, torch.ones(2, 11), recycled, text, controls)
    torch.testing.assert_close(frames, parallel, atol=1e-5, rtol=1e-5)


def test_k_steps_use_k_evaluations_and_store_one_entry_per_frame():
    model = tiny_model(window_frames=4, sink_frames=1)
    calls = count_forwards(model)
    gen = StreamingGenerator(model, latent_size=LATENT, steps=4, shift=3.0)
    gen.reset(torch.randn(2, 5, 16))
    frames = gen.generate(7)
    assert frames.shape == (2, 7, 4, *LATENT) and torch.isfinite(frames).all()
    assert len(calls) == 28 and gen.num_frames == 7


def record_calls(model):
    """Every forward's (latents, timesteps, recycled, output)."""
    calls = []
    model.register_forward_hook(lambda _m, args, out: calls.append(
        (args[0].clone(), args[1].clone(), args[2].clone(), out.clone())))
    return calls


@pytest.mark.parametrize(("steps", "window"), [(1, 3), (3, 3), (3, None)])
def test_streaming_presents_what_teacher_forced_training_presented(steps, window):
    """After real context frames, every Euler evaluation of a new frame equals the training forward (one t per
    clip, the `teacher_forcing` layout) at that evaluation's t, fed the context frames as the generator noised
    them: same frames at the same positions, the context at the query's noise level, the first frame recycled."""
    model = tiny_model(window_frames=window, sink_frames=1, control_dim=3)
    calls = record_calls(model)
    gen = StreamingGenerator(model, steps=steps, shift=2.0, seed=3)
    x0, text, controls = torch.randn(2, 6, 4, *LATENT), torch.randn(2, 5, 16), torch.randn(2, 6, 3)
    gen.reset(text, context=x0[:, :5], context_controls=controls[:, :5])
    assert len(calls) == 4 * steps and gen.num_frames == 4  # frames 1..4 observed at every level; frame 0 recycled
    frame = gen.step(controls[:, 5])
    observed, generated = calls[: 4 * steps], calls[4 * steps :]
    assert len(generated) == steps
    tf = teacher_forcing(x0, controls)  # positions 0..4 = frames 1..5, recycling frames 0..4
    for level in range(steps):
        t_level = gen.schedule[level]
        context = [observed[f * steps + level] for f in range(4)]
        assert all(torch.equal(c[1], torch.full((2, 1), t_level.item())) for c in context)  # at the query's t
        x_query, t_query, recycled_query, v_query = generated[level]
        assert torch.equal(t_query, torch.full((2, 1), t_level.item()))
        latents = torch.cat([c[0] for c in context] + [x_query], dim=1)  # (B, 5, C, H, W)
        recycled = torch.cat([c[2] for c in context] + [recycled_query], dim=1)
        torch.testing.assert_close(recycled, tf.recycled)  # the real previous frames, frame 0 at position 0
        with torch.no_grad():
            v_train = model(latents, t_level.expand(2, 5), tf.recycled, text, tf.controls)
        torch.testing.assert_close(v_query, v_train[:, -1:], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(frame).all()


@pytest.mark.parametrize(("steps", "window"), [(1, 3), (3, 3), (4, None)])
def test_k_step_teacher_forced_sampling_remakes_a_k_step_stream(steps, window):
    """`teacher_forced_frames` with K steps, fed a K-step stream's own frames as the clip, makes the same frames from
    the same noises in K parallel passes: what stage 3's distillation term asks of the teacher is what it streams."""
    model = tiny_model(window_frames=window, sink_frames=1, control_dim=3)
    gen = StreamingGenerator(model, steps=steps, shift=2.0)
    first, text, controls = torch.randn(2, 4, *LATENT), torch.randn(2, 5, 16), torch.randn(2, 9, 3)
    noises = torch.randn(2, 8, 4, *LATENT)
    gen.reset(text, first_frame=first)
    streamed = torch.stack([gen.step(controls[:, f + 1], noises[:, f]) for f in range(8)], dim=1)  # frames 1..8
    clip = torch.cat([first[:, None], streamed], dim=1)  # (B, 9, C, H, W)
    with torch.no_grad():
        parallel = teacher_forced_frames(model, clip, text, controls, noises, steps=steps, shift=2.0)
    torch.testing.assert_close(parallel, streamed, atol=1e-5, rtol=1e-5)


def test_every_level_keeps_its_own_cache():
    model = tiny_model(window_frames=4, sink_frames=1)
    gen = StreamingGenerator(model, latent_size=LATENT, steps=3)
    gen.reset(torch.randn(1, 5, 16))
    gen.generate(2)
    assert len(gen.caches) == 3 and all(c.num_frames == 2 for c in gen.caches)
    assert not torch.equal(gen.caches[0].keys[0][:, :, :2], gen.caches[2].keys[0][:, :, :2])
    with pytest.raises(AttributeError, match="caches"):
        gen.cache  # noqa: B018


def test_step_before_reset_is_an_error():
    gen = StreamingGenerator(tiny_model(window_frames=4), latent_size=LATENT)
    with pytest.raises(RuntimeError, match="reset"):
        gen.step()


def test_bidirectional_model_is_refused():
    with pytest.raises(ValueError, match="causal"):
        StreamingGenerator(tiny_model(bidirectional=True), latent_size=LATENT)


def test_no_recycling_ablation_reads_only_the_first_frame():
    """recycle_generated=False (AAPT App. E): only position 0 takes its recycled frame; later ones read the past
    through the cache alone, identically in a parallel pass and a stream."""
    model = tiny_model(window_frames=4, sink_frames=1, recycle_generated=False)
    text, noises = torch.randn(2, 5, 16), torch.randn(2, 6, 4, *LATENT)
    first = torch.randn(2, 4, *LATENT)
    recycled = torch.cat([first[:, None], torch.randn(2, 5, 4, *LATENT)], dim=1)
    only_first = torch.cat([first[:, None], torch.zeros_like(recycled[:, 1:])], dim=1)
    recycling = tiny_model(window_frames=4, sink_frames=1)
    ones = torch.ones(2, 6)
    with torch.no_grad():
        parallel = noises - model(noises, ones, recycled, text)
        torch.testing.assert_close(parallel, noises - model(noises, ones, only_first, text))  # later ones ignored ...
        assert not torch.allclose(recycling(noises, ones, recycled, text)[:, 1:],
                                  recycling(noises, ones, only_first, text)[:, 1:])  # ... which a recycling model reads
    gen = StreamingGenerator(model, steps=1)
    gen.reset(text, first_frame=first)
    streamed = torch.stack([gen.step(noise=noises[:, f]) for f in range(6)], dim=1)
    torch.testing.assert_close(streamed, parallel, atol=1e-5, rtol=1e-5)


def test_a_fork_continues_like_the_original_and_independently_of_it():
    model = tiny_model(window_frames=3).eval()
    gen = StreamingGenerator(model, seed=1)
    gen.reset(torch.randn(1, 5, model.cfg.text_dim), first_frame=torch.randn(1, model.cfg.latent_channels, *LATENT))
    gen.generate(4)
    fork = gen.fork()
    ahead = fork.generate(3)  # the fork runs ahead: the original must not notice
    torch.testing.assert_close(gen.generate(3), ahead, rtol=0, atol=0)
    assert fork.num_frames == gen.num_frames == 7


class _Ops(TorchDispatchMode):
    """Counts every ATen op run inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("steps", [1, 2])
def test_a_steady_stream_builds_no_table_and_reads_no_value_on_the_host(steps):
    """Once the window is full and the ring has wrapped, a step builds no RoPE/mask table or ring index and never
    reads a tensor's value into Python (.item() and bool() run aten._local_scalar_dense), nor makes a
    tensor from Python data: on CUDA it would wait for the device, and it could not be captured in a graph."""
    model = tiny_model(window_frames=3, sink_frames=1).eval()
    assert model.cfg.uses_sink_positions
    gen = StreamingGenerator(model, steps=steps)
    gen.reset(torch.randn(1, 5, model.cfg.text_dim), first_frame=torch.randn(1, model.cfg.latent_channels, *LATENT))
    gen.generate(10)  # window full, the ring wrapped twice
    tables = rotary_tables.cache_info().misses, token_mask.cache_info().misses
    indices = [len(c._index_cache) for c in gen.caches]
    with _Ops() as ops:
        for _ in range(6):
            gen.step()
    assert (rotary_tables.cache_info().misses, token_mask.cache_info().misses) == tables
    assert [len(c._index_cache) for c in gen.caches] == indices
    host = {op: n for op, n in ops.counts.items() if "_local_scalar_dense" in op or "lift_fresh" in op
            or "_to_copy" in op}
    assert host == {}
    assert ops.counts["aten.scaled_dot_product_attention.default"] == 6 * steps * 2 * model.cfg.depth  # self+cross


def test_cuda_graphs_are_refused_where_they_cannot_run():
    with pytest.raises(ValueError, match="cuda_graphs=True needs the model on a CUDA device"):
        StreamingGenerator(tiny_model(window_frames=3).eval(), cuda_graphs=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("steps", [1, 2])
def test_the_cuda_graph_stream_equals_the_eager_stream(steps):
    """Graph replays (one per ring phase) give the eager stream's frames, through a prompt switch and a reset."""
    model = tiny_model(window_frames=4, sink_frames=1, control_dim=3).cuda().eval()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(3)
    text = [torch.randn(2, 5, cfg.text_dim, generator=gen).cuda() for _ in range(2)]
    first = torch.randn(2, cfg.latent_channels, *LATENT, generator=gen).cuda()
    controls = torch.randn(2, 60, 3, generator=gen).cuda()

    def stream(cuda_graphs: bool) -> tuple[torch.Tensor, StreamingGenerator]:
        g = StreamingGenerator(model, steps=steps, seed=5, cuda_graphs=cuda_graphs)
        g.reset(text[0], first_frame=first)
        a = g.generate(40, controls[:, :40])
        g.set_prompt(text[1])  # the graphs read the old prompt's keys/values: captured again
        b = g.generate(20, controls[:, 40:])
        g.reset(text[0], first_frame=first)
        c = g.generate(40, controls[:, :40])
        return torch.cat([a, b, c], dim=1), g

    eager, _ = stream(False)
    graphed, g = stream(True)
    assert g.graphs.replays > 20
    torch.testing.assert_close(graphed, eager, atol=1e-5, rtol=1e-5)


def test_the_overlapped_decoder_returns_every_frame_in_order():
    decoded_in = []

    def decode(latent):
        decoded_in.append(latent.clone())
        return latent * 2

    decoder = OverlappedDecoder(decode, "cpu")
    handles = [decoder.submit(torch.full((1, 2), float(i))) for i in range(5)]
    assert [h.result()[0, 0].item() for h in handles] == [0.0, 2.0, 4.0, 6.0, 8.0]
    decoder.close()
    assert [t[0, 0].item() for t in decoded_in] == [0.0, 1.0, 2.0, 3.0, 4.0]
