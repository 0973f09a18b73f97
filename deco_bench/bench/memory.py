"""Peak memory of one phase: the CUDA caching allocator (allocated and reserved) and the host process RSS.

Each phase starts from fresh peaks: `torch.cuda.reset_peak_memory_stats` for the allocator and, on Linux, writing
"5" to /proc/self/clear_refs, which resets the kernel's resident high-water mark (VmHWM, proc(5)) so that the
VmHWM read at the end is the peak of this phase alone. Where clear_refs cannot be written, a background thread
samples the RSS (psutil) instead, and the result says which method gave the number.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psutil
import torch

NOT_CUDA = "not measured: the benchmark ran on CPU (no CUDA allocator)"


def _read_vmhwm_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        return None
    return None


def _reset_vmhwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _RssSampler(threading.Thread):
    def __init__(self, interval_s: float = 0.005):
        super().__init__(daemon=True)

        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.interval_s = interval_s
        self.peak = self._proc.memory_info().rss

    def run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def finish(self) -> int:
        self._stop.set()
        self.join()
        return max(self.peak, self._proc.memory_info().rss)


class PeakMemory:
    """Context manager; after exit, `result` holds the phase's peaks (bytes) or None with the reason."""

    def __init__(self, device: torch.device):
        self.device = device
        self.result: dict = {}
        self._sampler: _RssSampler | None = None
        self._hwm = False

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._hwm = _reset_vmhwm() and _read_vmhwm_bytes() is not None
        if not self._hwm:
            self._sampler = _RssSampler()
            self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        r: dict = {}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            r["cuda_peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated(self.device))
            r["cuda_peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved(self.device))
            r["cuda_reason"] = None
        else:
            r["cuda_peak_allocated_bytes"] = None
            r["cuda_peak_reserved_bytes"] = None
            r["cuda_reason"] = NOT_CUDA
        if self._hwm:
            r["host_rss_peak_bytes"] = _read_vmhwm_bytes()
            r["host_rss_method"] = "VmHWM after clear_refs reset (exact peak of this phase)"
        else:
            assert self._sampler is not None
            r["host_rss_peak_bytes"] = int(self._sampler.finish())
            r["host_rss_method"] = f"psutil RSS sampled every {self._sampler.interval_s * 1000:.0f} ms (lower bound)"
        self.result = r


__all__ = ["PeakMemory", "NOT_CUDA"]
