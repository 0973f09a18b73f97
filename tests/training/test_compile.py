"""train.compile and train.activation_checkpointing compute what eager computes.

Each compiled mode is traced with a counting backend around "aot_eager" (dynamo capture + AOTAutograd, the
graphs inductor would receive, without inductor's C++ build, which takes minutes on 2 CPU cores): float32 losses
and weights after one and two optimiser steps equal eager's within 1e-5 relative, every compiled region is
one graph (a graph break would add one), and nothing compiles again after the first step. Inductor itself is
measured on the GPU (scripts/gpu_bench.sh).
"""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch
import torch._dynamo as dynamo
from torch._dynamo.testing import CompileCounterWithBackend

from deco_bench.diffusion import losses
from deco_bench.diffusion.encoders import SmallEncoder
from deco_bench.io import safe_torch_load
from deco_bench.models import build_model, get_preset
from deco_bench.training import compile as compilemod
from deco_bench.training.distributed import DistInfo
from deco_bench.training.loop import train
from deco_bench.training.step import DenoiserWithProjector, adamw, step_losses

CPU = torch.device("cpu")
RES, BATCH, STEPS = 16, 4, 2
WEIGHTS = {"deco": losses.LossWeights(freqfm=1.0, repa=0.5), "baseline": losses.LossWeights(freqfm=0.0, repa=0.5)}
# graphs each mode compiles: blocks = one shared by the DiT blocks + the head (pixel decoder / final layer)
GRAPHS = {"blocks": 2, "full": 1}


def _setup(kind: str):
    torch.manual_seed(0)
    # one DiT block (and one decoder block): blocks share their graph, so more would only cost tracing time
    cfg = get_preset(f"{kind}-tiny", num_classes=4, depth=1, **({"decoder_depth": 1} if kind == "deco" else {}))
    net = build_model(cfg)
    with torch.no_grad():  # leave the zero init, so that every layer (the decoder's too) changes the output
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    encoder = SmallEncoder(patch_size=cfg.patch_size, dim=16, seed=0)
    module = DenoiserWithProjector(net, losses.RepaProjector(net.hidden_size, net.hidden_size, encoder.out_dim), 1)
    return net, encoder, module


def _batch(i: int):
    g = torch.Generator().manual_seed(i)
    x = torch.rand(BATCH, 3, RES, RES, generator=g) * 2 - 1
    return x, torch.tensor([0, 1, 2, 4]), (x + 1) / 2, torch.rand(BATCH, generator=g), torch.randn(x.shape, generator=g)


def _train(kind: str, mode: str) -> dict:
    """STEPS optimiser steps; the losses of each, the weights after the first and the last, and graph counts."""
    net, encoder, module = _setup(kind)
    counter = CompileCounterWithBackend("aot_eager")
    objective = compilemod.prepare(net, module, mode=mode, input_shape=(3, RES, RES), backend=counter)
    opt = adamw(module.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0, device=CPU)
    out: dict = {"losses": [], "graphs": []}
    for i in range(STEPS):
        parts = objective(module, encoder, *_batch(i), WEIGHTS[kind])
        parts["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        out["losses"].append({k: v.detach().clone() for k, v in parts.items()})
        out["graphs"].append(counter.frame_count)
        if i == 0:
            out["weights_1"] = {k: v.clone() for k, v in module.state_dict().items()}
    out["weights_n"] = module.state_dict()
    dynamo.reset()
    return out


@pytest.fixture(scope="module")
def runs():
    return {(kind, mode): _train(kind, mode) for kind in ("deco", "baseline") for mode in ("none", "blocks", "full")}


def _max_rel(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-12)) for k in b)


@pytest.mark.parametrize("kind", ["deco", "baseline"])
@pytest.mark.parametrize("mode", ["blocks", "full"])
def test_compiled_step_equals_eager(runs, kind, mode):
    eager, compiled = runs[(kind, "none")], runs[(kind, mode)]
    assert set(compiled["losses"][0]) == {"fm", "repa", "loss"} | ({"freqfm"} if kind == "deco" else set())
    for step in range(STEPS):  # the forward (every loss part) at every step
        assert _max_rel(compiled["losses"][step], eager["losses"][step]) <= 1e-5, step
    assert _max_rel(compiled["weights_1"], eager["weights_1"]) <= 1e-5  # one optimiser step
    assert _max_rel(compiled["weights_n"], eager["weights_n"]) <= 1e-5
    # and the steps did change the weights (the comparison could fail)
    assert _max_rel(eager["weights_n"], eager["weights_1"]) > 1e-4


@pytest.mark.parametrize("kind", ["deco", "baseline"])
@pytest.mark.parametrize("mode", ["blocks", "full"])
def test_one_graph_per_region_and_no_recompilation(runs, kind, mode):
    assert runs[(kind, mode)]["graphs"] == [GRAPHS[mode]] * STEPS
    assert runs[(kind, "none")]["graphs"] == [0] * STEPS


def test_regions_are_the_blocks_and_the_head():
    deco, baseline = (build_model(get_preset(f"{k}-tiny", num_classes=4)) for k in ("deco", "baseline"))
    assert compilemod.regions(deco) == [*deco.blocks, deco.decoder]
    assert compilemod.regions(baseline) == [*baseline.blocks, baseline.final_layer]


def test_unknown_mode_is_refused():
    net, _, module = _setup("deco")
    with pytest.raises(ValueError, match="^train.compile: got 'max'; accepted values: none, blocks, full$"):
        compilemod.prepare(net, module, mode="max")


# ------------------------------------------------------------------------------------ activation checkpointing

def test_activation_checkpointing_gives_eager_gradients_and_saves_less():
    grads, saved = [], []
    for ckpt in (False, True):
        net, encoder, module = _setup("deco")
        compilemod.prepare(net, module, mode="none", activation_checkpointing=ckpt)
        nbytes = [0]

        def pack(t):
            nbytes[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = step_losses(module, encoder, *_batch(0), WEIGHTS["deco"])["loss"]
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in module.named_parameters()})
        saved.append(nbytes[0])
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        assert torch.allclose(grads[1][n], grads[0][n], rtol=1e-6, atol=1e-9), n
    assert saved[1] < 0.7 * saved[0], saved  # the blocks' activations are recomputed, not kept


# ---------------------------------------------------------------------------------- the training loop

def _loop(out, tp, kind="deco"):
    torch.manual_seed(0)
    cfg = get_preset(f"{kind}-tiny", num_classes=4)
    net = build_model(cfg)
    enc = SmallEncoder(patch_size=cfg.patch_size, dim=16, seed=0)
    dist = DistInfo(rank=0, world_size=1, local_rank=0, device=CPU)
    return net, train(net, DATASET, tp=tp, entry=ENTRY, seed=0, out_dir=out, dist_info=dist, encoder=enc,
                      null_label=cfg.num_classes, meta={"fingerprint": "test", "model_config": {}})


@pytest.fixture(autouse=True)
def _dataset(tiny_dataset, tiny_entry):
    global DATASET, ENTRY
    DATASET, ENTRY = tiny_dataset, tiny_entry


def test_resume_after_kill_in_compiled_mode_matches_eager(tmp_path, tiny_train_params, monkeypatch):
    monkeypatch.setattr(compilemod, "BACKEND", "aot_eager")
    tp = dataclasses.replace(tiny_train_params, steps=4, eval_ckpt_steps=[])
    eager_net, eager = _loop(tmp_path / "eager", tp)
    compiled_tp = dataclasses.replace(tp, compile="blocks", activation_checkpointing=True)
    _loop(tmp_path / "compiled", dataclasses.replace(compiled_tp, steps=2))  # "killed" after its step-2 checkpoint
    (tmp_path / "compiled" / "final.pt").unlink()
    net, resumed = _loop(tmp_path / "compiled", compiled_tp)
    dynamo.reset()
    assert resumed.resumed_from == 2
    assert [r["step"] for r in resumed.log] == [r["step"] for r in eager.log] == [1, 2, 3, 4]
    for a, b in zip(resumed.log, eager.log):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert _max_rel(net.state_dict(), eager_net.state_dict()) <= 1e-5
    ema_a = safe_torch_load(tmp_path / "compiled" / "final.pt")["ema"]
    ema_b = safe_torch_load(tmp_path / "eager" / "final.pt")["ema"]
    assert _max_rel(ema_a, ema_b) <= 1e-5


def test_no_host_reads_of_losses_between_log_lines(tmp_path, tiny_train_params, monkeypatch):
    """A step that writes nothing reads no value back (on CUDA such a read waits for the GPU).

    Counted: reads of floating-point tensors by deco_bench's code (losses, grad norms, the finiteness check); not
    the data loader's index lists, nor torch's AdamW reading its step counters, which live on the host unless
    fused (on CUDA the loop's AdamW is fused)."""
    reads: list[int] = [0]
    for name in ("item", "__float__", "__bool__", "tolist"):
        real = getattr(torch.Tensor, name)

        def counting(self, *a, _real=real, **k):
            if self.is_floating_point() and "deco_bench" in sys._getframe(1).f_code.co_filename:
                reads[0] += 1
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counting)
    per_step: list[int] = []
    tp = dataclasses.replace(tiny_train_params, steps=5, log_every=5, ckpt_every=5, eval_ckpt_steps=[], grad_clip=1.0)
    torch.manual_seed(0)
    cfg = get_preset("deco-tiny", num_classes=4)
    dist = DistInfo(rank=0, world_size=1, local_rank=0, device=CPU)
    result = train(build_model(cfg), DATASET, tp=tp, entry=ENTRY, seed=0, out_dir=tmp_path, dist_info=dist,
                   encoder=None, null_label=4, meta={"fingerprint": "test"},
                   progress=lambda done, total: per_step.append(reads[0]))
    assert per_step[:4] == [per_step[0]] * 4  # steps 1-4 read nothing (what precedes step 1 is set-up)
    assert per_step[4] > per_step[3]  # step 5 logs: the loss parts and the grad norm are read
    assert set(result.log[0]) >= {"loss", "fm", "freqfm", "grad_norm"}
