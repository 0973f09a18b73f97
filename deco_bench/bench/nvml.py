"""GPU telemetry from NVML (the nvidia-ml-py package, `import pynvml`), sampled in a background thread.

Per sample: GPU and memory utilisation, memory used, power, SM and memory clocks, temperature. Energy comes from
the total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`, millijoules since the driver loaded; Volta and
newer): the difference between the end and the start of a phase, so energy per image needs no integration of
sampled power. Every query can fail on its own (no NVML, an old GPU, MIG where utilisation and the energy counter
are not supported): that field becomes null with the reason, the others are still reported. Nothing is ever
reported as 0 because it could not be read.

The sampler takes a `read` function (field -> value or NotAvailable) and an `energy_mj` function, so that tests
drive it with a fake device.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch

FIELDS = ("gpu_util_pct", "mem_util_pct", "mem_used_bytes", "power_w", "sm_clock_mhz", "mem_clock_mhz",
          "temperature_c")


@dataclass(frozen=True)
class NotAvailable:
    reason: str


Reading = dict  # field -> float | NotAvailable


class NvmlDevice:
    """One GPU through pynvml. `open_device` returns (device, None) or (None, reason)."""

    def __init__(self, pynvml, handle, index: int):
        self.nv, self.handle, self.index = pynvml, handle, index
        self.mig = False
        try:
            current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
            self.mig = current == pynvml.NVML_DEVICE_MIG_ENABLE
        except pynvml.NVMLError:
            pass  # not a MIG-capable GPU

    def _query(self, fn: Callable[[], float]) -> float | NotAvailable:
        try:
            return float(fn())
        except self.nv.NVMLError as e:
            where = " (MIG mode is enabled: NVML does not report this per MIG instance)" if self.mig else ""
            return NotAvailable(f"NVML: {e}{where}")

    def read(self) -> Reading:
        nv, h = self.nv, self.handle
        util = self._query_struct(lambda: nv.nvmlDeviceGetUtilizationRates(h))
        mem = self._query_struct(lambda: nv.nvmlDeviceGetMemoryInfo(h))
        return {
            "gpu_util_pct": util if isinstance(util, NotAvailable) else float(util.gpu),
            "mem_util_pct": util if isinstance(util, NotAvailable) else float(util.memory),
            "mem_used_bytes": mem if isinstance(mem, NotAvailable) else float(mem.used),
            "power_w": self._whole_gpu() or self._query(lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0),  # mW
            "sm_clock_mhz": self._query(lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)),
            "mem_clock_mhz": self._query(lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM)),
            "temperature_c": self._query(lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
        }

    def _query_struct(self, fn):
        try:
            return fn()
        except self.nv.NVMLError as e:
            where = " (MIG mode is enabled)" if self.mig else ""
            return NotAvailable(f"NVML: {e}{where}")

    def _whole_gpu(self) -> NotAvailable | None:
        # Under MIG, power and the energy counter belong to the whole GPU (every instance): not ours to report.
        if self.mig:
            return NotAvailable("not measured: MIG mode is enabled and NVML power/energy cover the whole GPU, "
                                "not this instance")
        return None

    def energy_mj(self) -> float | NotAvailable:
        return self._whole_gpu() or self._query(lambda: self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def info(self) -> dict:
        nv = self.nv

        def text(fn) -> str | None:
            try:
                v = fn()
                return v.decode() if isinstance(v, bytes) else str(v)
            except nv.NVMLError:
                return None

        return {"name": text(lambda: nv.nvmlDeviceGetName(self.handle)),
                "driver": text(nv.nvmlSystemGetDriverVersion), "mig": self.mig, **self.power_limits()}

    def power_limits(self) -> dict:
        """The board's power limits in watts (None where NVML does not say): enforced now, default, and the
        maximum it can be set to. The maximum tells boards of one name apart (bench/flops.py)."""
        nv, h = self.nv, self.handle

        def watts(name: str, pick=lambda v: v) -> float | None:
            fn = getattr(nv, name, None)
            try:
                return None if fn is None else float(pick(fn(h))) / 1000.0  # milliwatts
            except nv.NVMLError:
                return None

        return {"power_limit_w": watts("nvmlDeviceGetEnforcedPowerLimit"),
                "power_default_limit_w": watts("nvmlDeviceGetPowerManagementDefaultLimit"),
                "power_max_limit_w": watts("nvmlDeviceGetPowerManagementLimitConstraints", lambda v: v[1])}


def open_device(index: int = 0) -> tuple[NvmlDevice | None, str | None]:
    """NVML handle of CUDA device `index`. NVML numbers GPUs without CUDA_VISIBLE_DEVICES, so the device is found
    by its PCI bus id when torch reports one, by index otherwise."""
    try:
        import pynvml
    except ImportError:
        return None, "not measured: nvidia-ml-py (pynvml) is not installed"
    try:
        pynvml.nvmlInit()
        handle = None
        bus = _pci_bus_id(index)
        if bus is not None:
            try:
                handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus)
            except pynvml.NVMLError:
                handle = None
        if handle is None:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError as e:
        return None, f"not measured: NVML unavailable ({e})"
    return NvmlDevice(pynvml, handle, index), None


def _pci_bus_id(index: int) -> str | None:
    try:
        p = torch.cuda.get_device_properties(index)
        return f"{p.pci_domain_id:08x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0"
    except (AttributeError, RuntimeError, AssertionError):
        return None


class NvmlSampler:
    """Background sampling between start() and stop(); stop() returns the phase summary."""

    def __init__(self, read: Callable[[], Reading], energy_mj: Callable[[], float | NotAvailable] | None = None,
                 interval_s: float = 0.05, clock: Callable[[], float] = time.perf_counter):
        self.read, self.energy_mj, self.interval_s, self.clock = read, energy_mj, interval_s, clock
        self.samples: list[Reading] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._e0: float | NotAvailable = NotAvailable("energy counter not read")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self.read())

    def start(self) -> "NvmlSampler":
        self._e0 = self.energy_mj() if self.energy_mj else NotAvailable("no energy counter")
        self._t0 = self.clock()
        self.samples.append(self.read())
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self, images: int | None = None) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(self.read())
        duration = self.clock() - self._t0
        e1 = self.energy_mj() if self.energy_mj else NotAvailable("no energy counter")
        return summarise(self.samples, self._e0, e1, duration, images)


def summarise(samples: list[Reading], e0, e1, duration_s: float, images: int | None) -> dict:
    """mean/min/max per field over the samples (null + reason when no sample had it); energy from the counter."""
    fields = {}
    for name in FIELDS:
        values = [s[name] for s in samples if name in s and not isinstance(s[name], NotAvailable)]
        reasons = {s[name].reason for s in samples if isinstance(s.get(name), NotAvailable)}
        if values:
            fields[name] = {"mean": sum(values) / len(values), "min": min(values), "max": max(values),
                            "n": len(values)}
        else:
            fields[name] = None
            fields[f"{name}_reason"] = "; ".join(sorted(reasons)) or "not measured: never sampled"
    out = {"samples": len(samples), "duration_s": duration_s, **fields}
    if isinstance(e0, NotAvailable) or isinstance(e1, NotAvailable):
        reason = (e0 if isinstance(e0, NotAvailable) else e1).reason
        out.update(energy_j=None, energy_j_per_image=None, energy_reason=reason)
    else:
        energy_j = (float(e1) - float(e0)) / 1000.0
        out.update(energy_j=energy_j, energy_j_per_image=energy_j / images if images else None,
                   energy_reason=None if images else "energy per image needs the number of images")
    return out


__all__ = ["FIELDS", "NotAvailable", "NvmlDevice", "NvmlSampler", "open_device", "summarise"]
