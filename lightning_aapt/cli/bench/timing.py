"""Timing that says what it measured: warm-up excluded, device synchronised, median of repeats."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 2) -> float:
    """Median wall time of `fn()` over `repeats` runs after `warmup` untimed ones (GPU work included)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine(device: torch.device) -> str:
    """What ran the numbers: processor or GPU, threads, torch version."""
    if device.type == "cuda":
        memory = torch.cuda.get_device_properties(device).total_memory / 2**30
        what = f"{torch.cuda.get_device_name(device)} ({memory:.0f} GiB)"
    else:
        what = f"CPU {platform.processor() or platform.machine()}"
    return f"{what}; {torch.get_num_threads()} CPU threads; torch {torch.__version__}; {platform.system()}"


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int | None = None) -> float:
    """Measured matmul FLOP/s of this device at `dtype` (square matrices, the best case for the hardware)."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = median_seconds(lambda: a @ b, device, repeats=5 if device.type == "cuda" else 3)
    return 2 * size**3 / seconds
