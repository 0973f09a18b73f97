"""bench.memory_need: the memory a training step needs, against measured peaks, and what the machine has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deco_bench.bench import memory_need as mn
from deco_bench.models import build_model, count_parameters, get_preset

RECORDINGS = Path(__file__).resolve().parents[2] / "bench" / "recordings"


@pytest.mark.parametrize("preset, kind, resolution, batch", [("deco-xl", "deco", 256, 32),
                                                               ("baseline-xl", "baseline", 512, 16)])
def test_the_estimate_is_within_10_percent_of_the_h200_peaks(preset, kind, resolution, batch):
    """The bench stage's train step (bf16 autocast, FreqFM/REPA with a DINOv2 ViT-B/14, AdamW, EMA) measured on an
    H200: torch.cuda.max_memory_allocated of the step."""
    rec = json.loads((RECORDINGS / f"h200-2026-11-27-{resolution}.json").read_text())
    case = rec["cases"][f"{resolution}px/eager"]
    assert rec["settings"]["sizes"][0]["train_batch"] == batch
    measured = case["models"][kind]["train"]["memory"]["cuda_peak_allocated_bytes"]
    need = mn.training_need(get_preset(preset, num_classes=1000), batch=batch, resolution=resolution, bf16=True,
                            encoder="dinov2-b14")
    assert need.parameters == case["models"][kind]["params"]
    assert abs(need.total_bytes / measured - 1) < 0.10, (need.total_bytes, measured)


def test_states_count_20_bytes_per_parameter_and_activations_grow_with_the_batch():
    cfg = get_preset("deco-tiny")
    p = count_parameters(build_model(cfg))
    one = mn.training_need(cfg, batch=2, resolution=16, bf16=False)
    assert one.parameters == p and one.states_bytes == 20 * p and one.encoder_bytes == 0
    pair = mn.training_need(cfg, batch=4, resolution=16, bf16=False, ema=False, models=2)
    assert pair.states_bytes == 2 * 16 * p
    assert pair.parts().startswith("weights, gradients and optimiser of 2 models ")
    assert 1.9 < pair.activation_bytes / one.activation_bytes < 2.1  # twice the batch, twice the activations
    small = mn.training_need(cfg, batch=2, resolution=16, bf16=False, encoder="small")
    assert small.encoder_bytes > 0 and small.total_bytes == one.total_bytes + small.encoder_bytes


def test_memavailable_is_read_in_bytes():
    text = "MemTotal:       32768000 kB\nMemFree:         1000 kB\nMemAvailable:   24000000 kB\n"
    assert mn._meminfo_available(text) == 24000000 * 1024
    assert mn._meminfo_available("MemTotal: 1 kB\n") is None


def test_a_cgroup_limit_below_memavailable_wins(monkeypatch):
    monkeypatch.setattr(mn, "_cgroup_headroom", lambda: None)
    avail, source = mn.available_bytes(torch.device("cpu"))
    assert avail > 0 and source == "MemAvailable in /proc/meminfo"
    monkeypatch.setattr(mn, "_cgroup_headroom", lambda: 1024)
    assert mn.available_bytes(torch.device("cpu")) == (1024, "cgroup memory.max minus memory.current")


def test_nothing_is_refused_when_it_fits_or_when_memory_cannot_be_read(monkeypatch):
    needs = {"deco-tiny": mn.training_need(get_preset("deco-tiny"), batch=2, resolution=16, bf16=False)}
    kw = dict(batch=2, resolution=16, device=torch.device("cpu"), hint="hint")
    monkeypatch.setattr(mn, "available_bytes", lambda device: (needs["deco-tiny"].total_bytes, "test"))
    assert mn.refusal("tool", needs, **kw) is None
    monkeypatch.setattr(mn, "available_bytes", lambda device: (None, "unreadable"))
    assert mn.refusal("tool", needs, **kw) is None
    monkeypatch.setattr(mn, "available_bytes", lambda device: (needs["deco-tiny"].total_bytes - 1, "test"))
    assert mn.refusal("tool", needs, **kw).startswith("tool: refusing to start: deco-tiny at batch 2, 16 px needs ")
