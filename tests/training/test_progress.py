"""Live progress for DVC: the summary (DVC metrics) and the loss curve (a DVC plot) are rewritten while training
runs, hold numbers only, and end equal for a resumed and an uninterrupted run (wall-clock fields aside)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from deco_bench.models import build_model, get_preset
from deco_bench.training import progress
from deco_bench.training.distributed import DistInfo
from deco_bench.training.loop import train

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
META = {"fingerprint": "test", "model_config": {}}
TIMING = {"images_per_s", "elapsed_s", "wall_s"}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _train(out, tp, entry, dataset, live):
    """Train with `live` as on_log; returns (result, [(summary, curve) as read from disk after each logged step])."""
    seen = []

    def on_log(log):
        live(log)
        seen.append((json.loads(live.summary_path.read_text()), json.loads(live.curve_path.read_text())))

    torch.manual_seed(0)
    net = build_model(get_preset("deco-tiny", num_classes=4))
    result = train(net, dataset, tp=tp, entry=entry, seed=0, out_dir=out, dist_info=CPU, encoder=None,
                   null_label=4, meta=META, on_log=on_log)
    live.write_final(result.log, result.step)
    return result, seen


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_summary_and_curve_are_rewritten_at_every_logged_step(tmp_path, tiny_dataset, tiny_train_params, tiny_entry):
    live = progress.LiveProgress(tmp_path / "m.json", tmp_path / "curve.json", params_m=0.5, budget=math.inf)
    result, seen = _train(tmp_path / "run", tiny_train_params, tiny_entry, tiny_dataset, live)
    assert len(seen) == tiny_train_params.steps  # log_every 1
    for k, (summary, curve) in enumerate(seen, start=1):
        # mid-training: the step reached so far, its loss; numbers only, flat, nothing null
        assert summary["steps"] == k and set(summary) == {"steps", "loss", "images_per_s", "wall_s", "params_m"}
        assert all(_is_number(v) for v in summary.values()), summary
        assert summary["loss"] == pytest.approx(result.log[k - 1]["loss"])
        assert [r["step"] for r in curve] == list(range(1, k + 1))
        assert set(curve[-1]) == {"step", "loss", "fm", "freqfm", "images_per_s", "elapsed_s"}  # no REPA here
    final = json.loads(live.summary_path.read_text())
    assert final["steps"] == tiny_train_params.steps and final["params_m"] == 0.5
    assert json.loads(live.curve_path.read_text()) == progress.curve_rows(result.log)


def test_resumed_run_ends_with_the_uninterrupted_curve_and_summary(tmp_path, tiny_dataset, tiny_train_params,
                                                                   tiny_entry):
    full = progress.LiveProgress(tmp_path / "full.json", tmp_path / "full_curve.json", 0.5, budget=math.inf)
    _train(tmp_path / "full", tiny_train_params, tiny_entry, tiny_dataset, full)
    part = progress.LiveProgress(tmp_path / "part.json", tmp_path / "part_curve.json", 0.5, budget=math.inf)
    _train(tmp_path / "part", dataclasses.replace(tiny_train_params, steps=4), tiny_entry, tiny_dataset, part)
    (tmp_path / "part" / "final.pt").unlink()
    _, seen = _train(tmp_path / "part", tiny_train_params, tiny_entry, tiny_dataset, part)
    # the first rewrite after the resume already holds the steps trained before it
    assert [r["step"] for r in seen[0][1]] == [1, 2, 3, 4, 5]
    assert _without_timing(json.loads(part.curve_path.read_text())) == \
        _without_timing(json.loads(full.curve_path.read_text()))
    assert _without_timing([json.loads(part.summary_path.read_text())]) == \
        _without_timing([json.loads(full.summary_path.read_text())])


def test_the_live_curve_is_rewritten_only_within_its_time_budget(tmp_path):
    live = progress.LiveProgress(tmp_path / "m.json", tmp_path / "curve.json", params_m=1.0)
    log = [{"step": s, "loss": 1.0 / s, "images_per_s": 10.0, "elapsed_s": 0.1 * s} for s in range(1, 2001)]
    live(log[:1000])
    live(log)  # right after a rewrite that took time: the curve waits, the summary does not
    assert len(json.loads(live.curve_path.read_text())) == 1000
    assert json.loads(live.summary_path.read_text())["steps"] == 2000
    live._curve_done -= 1000.0  # as if training had gone on for a while
    live(log)
    assert len(json.loads(live.curve_path.read_text())) == 2000


def test_summary_leaves_out_what_does_not_exist_yet():
    assert progress.summary([], 2.0) == {"params_m": 2.0}
    got = progress.summary([{"step": 3, "images_per_s": 5.0}], 2.0)
    assert got == {"steps": 3, "images_per_s": 5.0, "params_m": 2.0}
    # the first logged step pays for warm-up: the median leaves it out once there are others
    log = [{"step": s, "loss": 0.5, "images_per_s": v, "elapsed_s": 1.0} for s, v in ((1, 1.0), (2, 8.0), (3, 10.0))]
    assert progress.summary(log, 2.0)["images_per_s"] == 9.0
