"""Environment fingerprint stamped into every benchmark result (docs/architecture.md).

`hardware` is the part that decides whether two timings are comparable at all (the gate refuses to compare
different hardware unless asked); the rest (torch, CUDA, driver, git revision) is shown beside the numbers.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

from deco_bench.bench.nvml import open_device


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str, cwd: str | os.PathLike | None = None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


REVISION_ENV = "DECO_BENCH_GIT_REVISION"


def git_revision(cwd: str | os.PathLike | None = None) -> dict:
    """HEAD of the checkout at cwd. A copy whose .git is missing or stale (a tarball, a working tree shipped to a GPU
    machine) can name its revision in env DECO_BENCH_GIT_REVISION, which then wins; the result says so and keeps
    the HEAD that git reported."""
    rev = _git("rev-parse", "HEAD", cwd=cwd)
    named = os.environ.get(REVISION_ENV) if cwd is None else None
    if named:
        return {"git_revision": named, "git_dirty": None, "git_head_reported": rev,
                "git_reason": f"named by ${REVISION_ENV}"}
    if rev is None:
        return {"git_revision": None, "git_dirty": None, "git_reason": "not a git checkout, or git is not installed"}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return {"git_revision": rev, "git_dirty": bool(status), "git_reason": None}


def hardware(device: torch.device, threads: int | None = None) -> dict:
    """What must match for two timings to be comparable."""
    hw = {"device_type": device.type, "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
          "torch_threads": threads if threads is not None else torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        hw.update(device_name=props.name, device_count=torch.cuda.device_count(),
                  device_memory_bytes=int(props.total_memory),
                  mig=None)  # filled by the caller from NVML when known
    else:
        hw.update(device_name=hw["cpu_model"], device_count=1)
    return hw


def fingerprint(device: torch.device, *, dtype: str, compile: bool | list[bool], nvml_info: dict | None = None) -> dict:
    """Device, driver, CUDA, torch, dtype, compile flag(s), git revision."""
    hw = hardware(device)
    if nvml_info is None and device.type == "cuda":
        dev, _reason = open_device(device.index if device.index is not None else torch.cuda.current_device())
        nvml_info = dev.info() if dev is not None else None
    if nvml_info is not None and device.type == "cuda":
        hw["mig"] = nvml_info.get("mig")
    env = {
        "hardware": hw,
        "device": str(device),
        "device_name": hw["device_name"],
        "driver": (nvml_info or {}).get("driver") if device.type == "cuda" else None,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "dtype": dtype,
        "compile": compile,
        **git_revision(),
    }
    if device.type == "cuda" and env["driver"] is None:
        env["driver_reason"] = "NVML unavailable: driver version not read"
    return env


__all__ = ["fingerprint", "hardware", "git_revision"]
