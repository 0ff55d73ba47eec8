"""Timing that says what it measured: warm-up excluded, device synchronised, median of repeats.

A call that can be timed on its own goes through `torch.utils.benchmark.Timer` (`median_seconds`). The rest is
timed by hand, for reasons: a training step runs inside Lightning's loop (a callback times it, `training.py`), and
a stream's latency percentiles need every call's own time in interleaved rounds, which Timer's blocks average
away (`streaming.py`)."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], min_run_time: float = 1.0) -> float:
    """Median time of one `fn()` by `torch.utils.benchmark.Timer`: warmed up, in blocks of calls sized to run at
    least `min_run_time` seconds in all, CUDA synchronised, on this process's threads (Timer's default is one)."""
    from torch.utils import benchmark

    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile of `values` (linear interpolation between order statistics)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lo = int(position)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


def _status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory so far (Linux), or None."""
    peak = _status_kib("VmHWM")
    return None if peak is None else 1024 * peak


class PeakMemory:
    """Peak memory of a block of work above what was held when it began: the GPU allocator's peak on CUDA, the
    process's peak RSS on Linux (reset through /proc/self/clear_refs); `extra_bytes` is None where neither can be
    read."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.extra_bytes: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")  # the peak RSS (VmHWM) restarts from the current RSS
                self._base = _status_kib("VmRSS")
            except OSError:
                self._base = None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.extra_bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        elif self._base is not None and (peak := _status_kib("VmHWM")) is not None:
            self.extra_bytes = 1024 * (peak - self._base)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    """What ran the numbers: processor or GPU, cores and threads, the software stack."""
    if device.type == "cuda":
        memory = torch.cuda.get_device_properties(device).total_memory / 2**30
        what = (f"{torch.cuda.get_device_name(device)} ({memory:.0f} GiB), CUDA {torch.version.cuda}, "
                f"cuDNN {torch.backends.cudnn.version()}")
    else:
        what = f"CPU {_cpu_name()}, {os.cpu_count()} cores"
    return (f"{what}; {torch.get_num_threads()} CPU threads; torch {torch.__version__}; Python "
            f"{platform.python_version()}; {platform.system()}")


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int | None = None) -> float:
    """Measured matmul FLOP/s of this device at `dtype` (square matrices, the best case for the hardware)."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = median_seconds(lambda: a @ b)
    return 2 * size**3 / seconds


# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, FLOP/s, by a part of the device name.
DENSE_BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "RTX 4090": 165e12}


def datasheet_peak(device: torch.device, dtype: torch.dtype) -> float | None:
    """The chip's dense bf16 peak from its data sheet (SXM parts), or None: not CUDA, not bf16, or not listed."""
    if device.type != "cuda" or dtype != torch.bfloat16:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for part, peak in DENSE_BF16_PEAK.items() if part in name), None)
