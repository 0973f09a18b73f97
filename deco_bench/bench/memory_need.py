"""Will a training step fit in this machine's memory? Estimated before a tool builds a model, so that asking a CPU
machine for the paper-size XL model ends in one line (exit 2) instead of the kernel's OOM killer.

The estimate of one step of AdamW training with an EMA copy:
- states: float32 weights, gradients, AdamW's two moments and the EMA copy: 4 + 4 + 8 + 4 bytes per parameter
  (the EMA and the optimiser are optional, for tools that train without them); the small REPA
  projector is left out;
- the frozen REPA encoder's float32 weights;
- activations: the tensors autograd saves for backward in a forward at the tool's batch and resolution, counted
  without allocating them (FakeTensorMode on CPU, under bf16 autocast where the tool uses it; each storage once;
  the weights themselves not again). Against the H200 recordings (bench/recordings/h200-2026-11-27-*.json: train
  peak allocated of DeCo-XL and Baseline-XL at 256 px batch 32 and 512 px batch 16) the estimate is within 5%.

Available memory: on CUDA the device's free memory (torch.cuda.mem_get_info); on CPU MemAvailable of
/proc/meminfo (else sysconf's free pages), lowered to the cgroup's limit when a memory.max is set.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from deco_bench.diffusion import encoders
from deco_bench.models import build_model

GB = 1e9
STATE_BYTES_PER_PARAM = {"weights": 4, "grads": 4, "adamw": 8, "ema": 4}


@dataclass(frozen=True)
class Need:
    """Bytes one training step needs, by part."""
    parameters: int
    states_bytes: int  # weights, gradients, AdamW moments, EMA
    encoder_bytes: int  # frozen REPA encoder weights
    activation_bytes: int  # saved for backward
    states_what: str = "weights, gradients, optimiser and EMA"

    @property
    def total_bytes(self) -> int:
        return self.states_bytes + self.encoder_bytes + self.activation_bytes

    def parts(self) -> str:
        enc = f", REPA encoder {self.encoder_bytes / GB:.1f} GB" if self.encoder_bytes else ""
        return f"{self.states_what} {self.states_bytes / GB:.1f} GB{enc}, " \
               f"activations {self.activation_bytes / GB:.1f} GB"


def _storage_key(t: torch.Tensor):
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, AttributeError):  # a tensor without storage: count it on its own
        return id(t)


def saved_activation_bytes(net: torch.nn.Module, in_channels: int, batch: int, resolution: int, bf16: bool) -> int:
    """Bytes autograd keeps for backward in one forward of `net` (built under the active FakeTensorMode)."""
    params = {_storage_key(p) for p in net.parameters()}
    kept: dict = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in params:
            kept[key] = t.untyped_storage().nbytes()
        return t

    x = torch.zeros(batch, in_channels, resolution, resolution)
    t = torch.zeros(batch)
    y = torch.zeros(batch, dtype=torch.long)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        net(x, t, y)
    return sum(kept.values())


def _encoder_parameters(encoder: str, resolution: int, patch_size: int) -> int:
    if encoder == "dinov2-b14":
        vit = encoders.DinoV2Encoder.build_vit(resolution, patch_size, device="meta")
        return sum(p.numel() for p in vit.parameters())
    if encoder == "small":
        with torch.device("meta"):
            return sum(p.numel() for p in encoders.build_encoder("small", patch_size=patch_size).parameters())
    return 0


def training_need(cfg, *, batch: int, resolution: int, bf16: bool, encoder: str = "none", ema: bool = True,
                  optimizer: bool = True, models: int = 1) -> Need:
    """Estimate for training `models` models of config `cfg` whose states coexist (one steps at a time)."""


    with FakeTensorMode():
        net = build_model(cfg)
        parameters = sum(p.numel() for p in net.parameters())
        activations = saved_activation_bytes(net, cfg.in_channels, batch, resolution, bf16)
    kept = [k for k in STATE_BYTES_PER_PARAM if (k != "ema" or ema) and (k != "adamw" or optimizer)]
    names = {"weights": "weights", "grads": "gradients", "adamw": "optimiser", "ema": "EMA"}
    what = ", ".join(names[k] for k in kept[:-1]) + f" and {names[kept[-1]]}"
    what += f" of {models} models" if models > 1 else ""
    return Need(parameters=parameters, states_bytes=models * parameters * sum(STATE_BYTES_PER_PARAM[k] for k in kept),
                encoder_bytes=4 * _encoder_parameters(encoder, resolution, cfg.patch_size),
                activation_bytes=activations, states_what=what)


def _meminfo_available(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # kB
    return None


def _cgroup_headroom() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), when a limit is set."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def available_bytes(device: torch.device) -> tuple[int | None, str]:
    """(bytes this process can still use on `device`, where the number comes from); None when unreadable."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), f"free memory of {torch.cuda.get_device_name(device)}"
    avail, source = None, ""
    try:
        avail, source = _meminfo_available(Path("/proc/meminfo").read_text()), "MemAvailable in /proc/meminfo"
    except OSError:
        pass
    if avail is None:
        try:
            avail, source = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free pages (sysconf)"
        except (ValueError, OSError, AttributeError):
            return None, "available memory unreadable (no /proc/meminfo, no sysconf)"
    cgroup = _cgroup_headroom()
    if cgroup is not None and cgroup < avail:
        avail, source = cgroup, "cgroup memory.max minus memory.current"
    return avail, source


def refusal(tool: str, needs: dict[str, Need], *, batch: int, resolution: int, device: torch.device,
            hint: str) -> str | None:
    """One line refusing to start when the largest need exceeds what `device` has; None when it fits (or when the
    available memory cannot be read: then nothing is refused)."""
    name, need = max(needs.items(), key=lambda kv: kv[1].total_bytes)
    avail, source = available_bytes(device)
    if avail is None or need.total_bytes <= avail:
        return None
    where = "this GPU" if device.type == "cuda" else "this machine"
    return (f"{tool}: refusing to start: {name} at batch {batch}, {resolution} px needs about "
            f"{need.total_bytes / GB:.1f} GB ({need.parts()}) but {where} has {avail / GB:.1f} GB available "
            f"({source}); {hint}")


__all__ = ["Need", "training_need", "available_bytes", "refusal"]
