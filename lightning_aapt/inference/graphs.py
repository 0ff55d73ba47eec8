"""`StepGraphs`: a stream's steady-state step replayed as CUDA graphs, one per ring phase.

At batch 1 a small step is bound by kernel launches and Python, not by the GPU (the 110M `bench` preset: about 1%
of an H200's peak). A CUDA graph records the step's kernels once and replays them with one launch.

What makes the step capturable (tested on the CPU, `tests/unit/test_streaming.py`): once the window is full,
every step has the same attention layout (positions rebased to the query frame), so its RoPE tables, its mask
(none: every stored frame is visible) and the ring's read indices are cached tensors; no step reads a tensor's
value on the host or makes a tensor from Python data. What differs between steps is which ring slot is written
and the order in which slots are read: R = window_frames phases, then it repeats. So one graph per phase:

- frames run eagerly until the stream is steady and a phase has been seen once eagerly (its index tensors exist);
- the next time that phase comes, its step is captured (the capture also runs the Python bookkeeping of the step:
  the caches advance) and replayed at once to compute it; after that the phase is replayed and the caches are
  advanced by hand (the graph holds the GPU work, not the Python);
- the step's inputs live in static buffers: the noise is drawn eagerly from the stream's generator into one
  (the same draws as the eager step, so the graph stream equals the eager one), the controls are copied into one;
- a new prompt or a reset changes what the graphs read: they are dropped and captured again.

All phases share one memory pool and run one at a time, in capture order.
"""

from __future__ import annotations

import torch
from torch import Tensor


class StepGraphs:
    """The CUDA graphs of one `StreamingGenerator`'s steady steps (see the module docstring).

    Args:
        gen: the generator (its own `eager_step` is what is captured; streaming.py imports this file, not back).
    """

    def __init__(self, gen) -> None:
        if gen.device.type != "cuda":
            raise ValueError(f"cuda_graphs=True needs the model on a CUDA device; it is on {gen.device}")
        cfg = gen.model.cfg
        if cfg.window_frames is None:
            raise ValueError("cuda_graphs=True needs a bounded window (window_frames): with an unbounded cache every "
                             "step attends to one frame more, so no two steps are alike")
        self.gen = gen
        self.period = cfg.window_frames  # ring phases
        self.steady_from = 2 * cfg.visible_frames  # cache positions: every layout settled
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor]] = {}
        self.seen: set[int] = set()
        self.epoch: tuple | None = None
        self.pool = None
        self.stream = torch.cuda.Stream(gen.device)
        self.noise: Tensor | None = None
        self.controls: Tensor | None = None
        self.replays = 0

    def step(self, controls: Tensor | None) -> Tensor:
        """The next frame (B, C, H, W), as `StreamingGenerator.step(controls)` computes it."""
        gen = self.gen
        epoch = tuple((id(c), c.version) for c in gen.caches)
        if epoch != self.epoch:  # a new prompt or stream: the graphs read tensors that are gone
            self.graphs.clear()
            self.seen.clear()
            self.epoch = epoch
        position = gen.num_frames
        if position < self.steady_from:
            return gen.eager_step(controls)
        phase = position % self.period
        if phase not in self.seen:  # eagerly once: its read indices are made and cached
            self.seen.add(phase)
            return gen.eager_step(controls)
        self._inputs(controls)
        graph = self.graphs.get(phase)
        if graph is None:
            return self._capture(phase, controls).clone()
        graph[0].replay()
        for cache in gen.caches:
            cache.advance(1)  # the step's Python bookkeeping, which the graph does not hold
        self.replays += 1
        return graph[1].clone()

    def _inputs(self, controls: Tensor | None) -> None:
        gen = self.gen
        if self.noise is None or self.noise.shape != gen._noise.shape:
            self.noise = torch.empty_like(gen._noise)
            self.graphs.clear()
        self.noise.normal_(generator=gen.rng)  # the draw the eager step would make, into the static buffer
        if controls is not None:
            if self.controls is None or self.controls.shape != controls.shape:
                self.controls = torch.empty(controls.shape, device=gen.device, dtype=gen.dtype)
                self.graphs.clear()
            self.controls.copy_(controls)
        elif self.controls is not None:
            self.controls = None
            self.graphs.clear()

    def _capture(self, phase: int, controls: Tensor | None) -> Tensor:
        gen = self.gen
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
            self._warm_up()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
            out = gen.eager_step(self.controls, noise=self.noise)  # recorded, not run; the caches advance
        graph.replay()  # run this frame
        self.graphs[phase] = (graph, out)
        return out

    def _warm_up(self) -> None:
        """A few steps of a throw-away copy on the capture stream (lazy handles and workspaces made outside capture)."""
        copy = self.gen.fork()
        self.stream.wait_stream(torch.cuda.current_stream(self.gen.device))
        with torch.cuda.stream(self.stream):
            for _ in range(3):
                copy.eager_step(self.controls, noise=self.noise)
        torch.cuda.current_stream(self.gen.device).wait_stream(self.stream)
