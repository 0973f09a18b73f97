"""A run killed and resumed equals an uninterrupted one; EMA, checkpoints and errors behave as documented."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from deco_bench.diffusion import losses
from deco_bench.diffusion.encoders import SmallEncoder
from deco_bench.io import safe_torch_load
from deco_bench.models import build_model, get_preset
from deco_bench.models import loading
from deco_bench.training import checkpoint as ckpt
from deco_bench.training.distributed import DistInfo
from deco_bench.training.loop import NonFiniteLossError, train

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
META = {"fingerprint": "test", "model_config": {}}


@pytest.fixture(autouse=True)
def _dataset(tiny_dataset):
    global DATASET
    DATASET = tiny_dataset


def _run(out, tp, entry, *, repa=True, kind="deco"):
    torch.manual_seed(0)
    cfg = get_preset(f"{kind}-tiny", num_classes=4)
    net = build_model(cfg)
    enc = SmallEncoder(patch_size=cfg.patch_size, dim=16, seed=0) if repa else None
    return net, train(net, DATASET, tp=tp, entry=entry, seed=0, out_dir=out, dist_info=CPU,
                      encoder=enc, null_label=cfg.num_classes, meta=META)


def _losses(result):
    return [(r["step"], r["loss"]) for r in result.log]


def test_resume_equals_uninterrupted(tmp_path, tiny_train_params, tiny_entry):
    full_net, full = _run(tmp_path / "full", tiny_train_params, tiny_entry)
    # "Kill" after step 4: a run configured to stop there leaves the same checkpoints a killed run would.
    _, first = _run(tmp_path / "resumed", dataclasses.replace(tiny_train_params, steps=4), tiny_entry)
    (tmp_path / "resumed" / "final.pt").unlink()
    res_net, second = _run(tmp_path / "resumed", tiny_train_params, tiny_entry)
    assert second.resumed_from == 4
    assert _losses(full) == _losses(second)  # the log is complete and equal, step by step
    for (k, a), b in zip(full_net.state_dict().items(), res_net.state_dict().values()):
        assert torch.equal(a, b), k
    ema_full = safe_torch_load(tmp_path / "full" / "final.pt")["ema"]
    ema_res = safe_torch_load(tmp_path / "resumed" / "final.pt")["ema"]
    assert all(torch.equal(ema_full[k], ema_res[k]) for k in ema_full)


def test_eval_checkpoint_is_ema_at_that_step(tmp_path, tiny_train_params, tiny_entry):
    _run(tmp_path / "long", tiny_train_params, tiny_entry)
    _run(tmp_path / "short", dataclasses.replace(tiny_train_params, steps=2), tiny_entry)
    at2 = safe_torch_load(tmp_path / "long" / "eval_ckpts" / "step_00000002.pt")
    short = safe_torch_load(tmp_path / "short" / "final.pt")
    assert at2["step"] == 2
    assert all(torch.equal(at2["ema"][k], short["ema"][k]) for k in short["ema"])
    # and the EMA moved away from the initial weights (the check can fail)
    init = build_model(get_preset("deco-tiny", num_classes=4)).state_dict()
    assert any(not torch.equal(at2["ema"][k], init[k]) for k in init)


def test_rotation_keeps_last(tmp_path, tiny_train_params, tiny_entry):
    _run(tmp_path, dataclasses.replace(tiny_train_params, keep_last=2), tiny_entry)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "ckpt")] == [4, 6]


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_train_params, tiny_entry, monkeypatch):
    _run(tmp_path, dataclasses.replace(tiny_train_params, steps=2), tiny_entry)
    before = (tmp_path / "ckpt" / "step_00000002.pt").read_bytes()
    real = losses.deco_loss

    def poisoned(*args, **kwargs):  # the loss of the third step overflows
        out = real(*args, **kwargs)
        out["loss"] = out["loss"] * float("inf")
        return out

    monkeypatch.setattr(losses, "deco_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="step 3"):
        _run(tmp_path, dataclasses.replace(tiny_train_params, steps=4), tiny_entry)
    assert (tmp_path / "ckpt" / "step_00000002.pt").read_bytes() == before
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "ckpt")] == [2]


def test_baseline_without_repa_trains_and_loss_decreases(tmp_path, tiny_train_params):
    from deco_bench.config import ModelEntry

    _, result = _run(tmp_path, dataclasses.replace(tiny_train_params, steps=30, log_every=5),
                     ModelEntry(preset="baseline-tiny", freqfm_weight=0.0, repa_weight=0.0), repa=False,
                     kind="baseline")
    losses = [r["loss"] for r in result.log]
    assert "repa" not in result.log[0] and "freqfm" not in result.log[0]
    assert losses[-1] < losses[0]


def test_init_state_starts_model_and_ema_from_given_weights(tmp_path, tiny_train_params, tiny_entry):
    _run(tmp_path / "first", dataclasses.replace(tiny_train_params, steps=2), tiny_entry)
    weights = safe_torch_load(tmp_path / "first" / "final.pt")["ema"]
    torch.manual_seed(1)  # a different random init, which init_state must replace
    cfg = get_preset("deco-tiny", num_classes=4)
    net = build_model(cfg)
    train(net, DATASET, tp=dataclasses.replace(tiny_train_params, steps=0, eval_ckpt_steps=[]), entry=tiny_entry,
          seed=0, out_dir=tmp_path / "second", dist_info=CPU, encoder=None, null_label=4, meta=META,
          init_state=weights)
    ema = safe_torch_load(tmp_path / "second" / "final.pt")["ema"]
    assert all(torch.equal(net.state_dict()[k], weights[k]) for k in weights)
    assert all(torch.equal(ema[k], weights[k]) for k in weights)
    bad = {k: v for k, v in weights.items() if not k.startswith("decoder.")}
    with pytest.raises(loading.ArchitectureMismatchError, match="missing keys: decoder"):
        train(build_model(cfg), DATASET, tp=dataclasses.replace(tiny_train_params, steps=0), entry=tiny_entry, seed=0,
              out_dir=tmp_path / "third", dist_info=CPU, encoder=None, null_label=4, meta=META, init_state=bad)


def test_dataloader_workers_do_not_change_the_run(tmp_path, tiny_train_params, tiny_entry):
    tp = dataclasses.replace(tiny_train_params, steps=3, grad_accum=2, eval_ckpt_steps=[])
    _, serial = _run(tmp_path / "serial", tp, tiny_entry)
    _, workers = _run(tmp_path / "workers", dataclasses.replace(tp, num_workers=2), tiny_entry)
    assert _losses(serial) == _losses(workers)
