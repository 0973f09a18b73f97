"""NVML sampler with a fake device: energy from the counter difference, statistics of sampled fields, and
fields a MIG instance cannot report becoming null with the reason (never 0)."""

from __future__ import annotations

import types

import pytest
import torch

from deco_bench.bench.nvml import NotAvailable, NvmlDevice, NvmlSampler, summarise
from deco_bench.bench.runner import NO_CUDA, Telemetry


def scripted(readings: list[dict]):
    it = iter(readings)
    return lambda: next(it)


def test_energy_is_counter_difference_and_fields_summarised():
    readings = [{"power_w": 300.0, "gpu_util_pct": 90.0}, {"power_w": 500.0, "gpu_util_pct": 100.0}]
    energy = iter([1_000.0, 6_000.0])  # mJ at start and stop
    s = NvmlSampler(scripted(readings), lambda: next(energy), interval_s=60.0)  # no sample between start and stop
    s.start()
    out = s.stop(images=10)
    assert out["samples"] == 2
    assert out["energy_j"] == pytest.approx(5.0)
    assert out["energy_j_per_image"] == pytest.approx(0.5)
    assert out["power_w"] == {"mean": 400.0, "min": 300.0, "max": 500.0, "n": 2}
    assert out["sm_clock_mhz"] is None and "never sampled" in out["sm_clock_mhz_reason"]


def test_unsupported_fields_are_null_with_reason_never_zero():
    mig = NotAvailable("NVML: Not Supported (MIG mode is enabled)")
    samples = [{"gpu_util_pct": mig, "power_w": 100.0}] * 3
    out = summarise(samples, NotAvailable("NVML: Not Supported"), 5.0, duration_s=1.0, images=4)
    assert out["gpu_util_pct"] is None and "MIG" in out["gpu_util_pct_reason"]
    assert out["energy_j"] is None and out["energy_j_per_image"] is None
    assert out["energy_reason"] == "NVML: Not Supported"
    assert out["power_w"]["mean"] == 100.0


class FakeNVMLError(Exception):
    pass


def fake_pynvml(mig: bool):
    """A pynvml stand-in: on MIG, utilisation and the energy counter raise Not Supported."""
    def unsupported(*_):
        raise FakeNVMLError("Not Supported")

    return types.SimpleNamespace(
        NVMLError=FakeNVMLError, NVML_DEVICE_MIG_ENABLE=1, NVML_CLOCK_SM=0, NVML_CLOCK_MEM=1, NVML_TEMPERATURE_GPU=0,
        nvmlDeviceGetMigMode=lambda h: (1 if mig else 0, 0),
        nvmlDeviceGetUtilizationRates=unsupported if mig else (lambda h: types.SimpleNamespace(gpu=87, memory=40)),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=2**30, total=2**34),
        nvmlDeviceGetPowerUsage=lambda h: 250_000,  # milliwatts
        nvmlDeviceGetClockInfo=lambda h, kind: 1980 if kind == 0 else 2619,
        nvmlDeviceGetTemperature=lambda h, kind: 55,
        nvmlDeviceGetTotalEnergyConsumption=unsupported if mig else (lambda h: 123_456),
        nvmlDeviceGetName=lambda h: b"NVIDIA H200", nvmlSystemGetDriverVersion=lambda: "550.54.15")


def test_device_wrapper_units_and_mig():
    full = NvmlDevice(fake_pynvml(mig=False), handle=object(), index=0).read()
    assert full["power_w"] == 250.0 and full["gpu_util_pct"] == 87.0 and full["mem_used_bytes"] == 2**30
    mig_dev = NvmlDevice(fake_pynvml(mig=True), handle=object(), index=0)
    r = mig_dev.read()
    assert isinstance(r["gpu_util_pct"], NotAvailable) and "MIG" in r["gpu_util_pct"].reason
    # power and energy are whole-GPU figures under MIG: null with the reason, not another instance's watts
    assert isinstance(r["power_w"], NotAvailable) and "MIG" in r["power_w"].reason
    assert r["sm_clock_mhz"] == 1980.0
    assert isinstance(mig_dev.energy_mj(), NotAvailable)
    assert mig_dev.info() == {"name": "NVIDIA H200", "driver": "550.54.15", "mig": True, "power_limit_w": None,
                              "power_default_limit_w": None, "power_max_limit_w": None}  # this fake has no limits


def test_power_limits_in_watts_tell_boards_apart():
    nv = fake_pynvml(mig=False)
    nv.nvmlDeviceGetEnforcedPowerLimit = lambda h: 550_000  # milliwatts: lowered by the administrator
    nv.nvmlDeviceGetPowerManagementDefaultLimit = lambda h: 600_000
    nv.nvmlDeviceGetPowerManagementLimitConstraints = lambda h: (200_000, 600_000)
    info = NvmlDevice(nv, handle=object(), index=0).info()
    assert (info["power_limit_w"], info["power_default_limit_w"], info["power_max_limit_w"]) == (550.0, 600.0, 600.0)


def test_cpu_telemetry_has_reason_and_no_sampler():
    tel = Telemetry(torch.device("cpu"), 0.05)
    assert tel.sampler() is None and tel.reason == NO_CUDA


def test_telemetry_open_failure_degrades():
    tel = Telemetry(torch.device("cuda", 0), 0.05, opener=lambda index: (None, "not measured: NVML unavailable (x)"))
    assert tel.sampler() is None and tel.info() is None and "NVML unavailable" in tel.reason
