"""`OverlappedDecoder`: decode latent frame f while the generator computes frame f + 1.

A player needs pixels, and a real VAE's decode of a latent frame can cost as much as the 1-NFE step itself. The
two do not depend on each other (frame f + 1 recycles latent f, not its pixels), so they can run at once: on CUDA
the decode goes on its own stream (ordered after the step that made its latent by an event), on the CPU to one
worker thread (PyTorch ops release the GIL). Frames come back in order; `submit` returns a handle whose `result()`
waits for that frame only.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch import Tensor


class _CudaResult:
    def __init__(self, out: Tensor, done: torch.cuda.Event) -> None:
        self.out, self.done = out, done

    def result(self) -> Tensor:
        stream = torch.cuda.current_stream(self.out.device)
        stream.wait_event(self.done)  # later work on the main stream sees the pixels
        self.out.record_stream(stream)  # made on the side stream, used (and freed) on this one
        return self.out


class OverlappedDecoder:
    """Runs `decode` (latents -> pixels) off the generator's critical path (see the module docstring).

    Args:
        decode: e.g. a codec's `stream_decoder().step` (stateful decoders get frames in order: one worker).
        device: where the latents live: a CUDA device decodes on a side stream, anything else in a thread.
    """

    def __init__(self, decode: Callable[[Tensor], Tensor], device: torch.device | str) -> None:
        self.decode = decode
        self.device = torch.device(device)
        if self.device.type == "cuda":
            self.stream = torch.cuda.Stream(self.device)
        else:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")

    def submit(self, latent: Tensor) -> Future[Tensor] | _CudaResult:
        """Start decoding `latent` (the caller must not write into it afterwards); `.result()` gives the pixels."""
        if self.device.type != "cuda":
            return self.pool.submit(self._decode_cpu, latent)
        self.stream.wait_stream(torch.cuda.current_stream(self.device))  # after the step that made the latent
        with torch.cuda.stream(self.stream), torch.inference_mode():
            out = self.decode(latent)
            done = torch.cuda.Event()
            done.record(self.stream)
        latent.record_stream(self.stream)  # its memory is not reused before the decode has read it
        return _CudaResult(out, done)

    def _decode_cpu(self, latent: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.decode(latent)

    def close(self) -> None:
        """Wait for every submitted frame and release the worker."""
        if self.device.type == "cuda":
            self.stream.synchronize()
        else:
            self.pool.shutdown(wait=True)
