"""Property tests over generated files: whatever a checkpoint, weights, sample or report input holds (random bytes,
a truncated or bit-flipped real file, text, pickles of the wrong shape), its reader either accepts it whole or
raises a named DecoBenchError; never KeyError, IndexError, UnicodeDecodeError, struct.error or a traceback. Every
case is drawn from a fixed seed, so a failure names a reproducible file.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deco_bench.io import CorruptFileError, DecoBenchError, load_npz
from deco_bench.stages._sampling import load_ema_model
from deco_bench.training import checkpoint as ckpt
from deco_bench.training import resume

# the report tests' complete fixture tree (tests/report/conftest.py; both folders have a conftest module)
_spec = importlib.util.spec_from_file_location("report_fixtures", Path(__file__).resolve().parents[1] / "report"
                                               / "conftest.py")
report_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report_fixtures)
COMPLETE, MODELS, write_samples = report_fixtures.COMPLETE, report_fixtures.MODELS, report_fixtures.write_samples

SEED = 2511_19365


def _valid_state() -> dict:
    net = nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {"step": 4, "module": net.state_dict(), "ema": net.state_dict(), "optimizer": opt.state_dict(),
            "meta": {"fingerprint": "f", "model_config": {}, "model_name": "deco"}}


def _wrong_shapes() -> list:
    good = _valid_state()
    variants = [torch.zeros(3), [1, 2, 3], "text", 7, None, {"format": ckpt.FORMAT}, {"ema": [1, 2]},
                {"ema": torch.zeros(2)}, {"ema": {"w": 3}}, {"ema": {}}, {"ema": {1: torch.zeros(1)}}]
    for key, bad in (("step", "4"), ("step", -1), ("step", True), ("module", [torch.zeros(1)]), ("ema", None),
                     ("optimizer", None), ("optimizer", {"state": [], "param_groups": []}), ("meta", ["f"]),
                     ("module", {"weight": "not a tensor"})):
        v = {"format": ckpt.FORMAT, **copy.deepcopy(good)}
        v[key] = bad
        variants.append(v)
    return variants


def generated_files(folder: Path, real: Path, count: int = 36) -> list[Path]:
    """`count` files: random bytes, truncations and bit flips of `real`, text, and pickles of wrong shapes."""
    rng = random.Random(SEED)
    data = real.read_bytes()
    shapes = _wrong_shapes()
    out = []
    for i in range(count):
        kind = i % 6
        path = folder / f"case_{i:02d}.pt"
        if kind == 0:
            path.write_bytes(rng.randbytes(rng.choice([0, 1, 7, 64, 512, 4096])))
        elif kind == 1:
            path.write_bytes(data[: rng.randrange(len(data))])
        elif kind == 2:
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(flipped))
        elif kind == 3:
            path.write_text(rng.choice(["step: 4\nema: {}\n", "{}", "\u00e9t\u00e9 \u2603" * 40, "PK\x03\x04 not a zip"]))
            if rng.random() < 0.5:
                path.write_bytes(path.read_bytes() + bytes([0xff, 0xfe, 0x80]))  # and not even UTF-8
        else:
            torch.save(shapes[(i // 6 * 2 + kind - 4) % len(shapes)], path)
        out.append(path)
    return out


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fuzz")
    real = ckpt.save_checkpoint(root / "real", 4, _valid_state(), keep_last=2)
    ema = root / "final.pt"
    torch.save({"step": 4, "ema": _valid_state()["ema"], "meta": {"model_config": {}}}, ema)
    (root / "ckpts").mkdir()
    (root / "emas").mkdir()
    return {"root": root, "ckpts": generated_files(root / "ckpts", real), "emas": generated_files(root / "emas", ema)}


def _named_or_valid(fn, path: Path):
    try:
        return fn(path)
    except DecoBenchError as e:
        assert "\n" not in str(e), f"{path.name}: a multi-line message: {e}"
        return e
    except Exception as e:  # noqa: BLE001 - exactly what the property forbids
        pytest.fail(f"{path.name}: {type(e).__name__}: {e}")


def test_fuzzed_training_checkpoints_are_accepted_whole_or_named(fuzzed):
    named = 0
    for path in fuzzed["ckpts"]:
        got = _named_or_valid(ckpt.load_checkpoint, path)
        if isinstance(got, DecoBenchError):
            named += 1
        else:  # a bit flip inside tensor data can leave a readable file: then every part has its type
            assert ckpt.is_tensor_map(got["module"]) and isinstance(got["step"], int)
    assert named >= 30  # nearly every case is damaged beyond reading


def test_a_fuzzed_newest_checkpoint_is_dropped_and_the_run_falls_back(fuzzed, tmp_path):
    meta = {"fingerprint": "f"}
    for path in fuzzed["ckpts"][:12]:
        run = tmp_path / path.stem
        ckpt.save_checkpoint(run / "ckpt", 2, _valid_state() | {"meta": meta}, keep_last=5)
        shutil.copy(path, run / "ckpt" / ckpt.ckpt_name(4))
        note = _named_or_valid(lambda _: resume.reconcile(run, meta, 10, []), path)
        assert isinstance(note, str), note
        assert note.startswith("dropped unreadable checkpoint step_00000004.pt") or "resuming from step 4" in note
        assert ckpt.latest_checkpoint(run / "ckpt")["step"] in (2, 4)


@pytest.mark.parametrize("what", ["init_from", "sampling"])
def test_fuzzed_ema_weights_files_are_refused_by_name(fuzzed, what):
    load = {"init_from": lambda p: ckpt.load_ema_weights(p, "models.deco.init_from"),
            "sampling": lambda p: load_ema_model(p, torch.device("cpu"))}[what]
    results = [_named_or_valid(load, p) for p in fuzzed["emas"]]
    assert sum(isinstance(r, DecoBenchError) for r in results) >= 30


@pytest.mark.parametrize("content", [torch.zeros(4), [torch.zeros(1), 2], {"ema": [1, 2]}])
def test_an_init_from_file_holding_a_tensor_or_a_list_is_named(tmp_path, content):
    path = tmp_path / "init.pt"
    torch.save(content, path)
    with pytest.raises(CorruptFileError) as e:
        ckpt.load_ema_weights(path, "models.deco.init_from")
    assert str(e.value) == (f"{path}: models.deco.init_from needs a deco-bench EMA weights file (final.pt or "
                            f"eval_ckpts/step_*.pt: a mapping whose 'ema' holds the weights), not "
                            f"{type(content).__name__}")


def test_fuzzed_npz_files_are_refused_by_name(tmp_path):
    real = tmp_path / "real.npz"
    np.savez(real, arr_0=np.zeros((4, 8, 8, 3), np.uint8), labels=np.arange(4))
    for path in generated_files(tmp_path, real, count=24):
        got = _named_or_valid(lambda p: load_npz(p, ["arr_0", "labels"]), path)
        assert isinstance(got, DecoBenchError) or got["arr_0"].shape == (4, 8, 8, 3)


# ---- report inputs ---------------------------------------------------------------------------------------------

ODD_VALUES = [None, "x", 7, -1.5, [], {}, [1, 2], {"a": 1}, True, "<script>alert(1)</script>", float("nan")]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:2]):
            yield from _paths(v, prefix + (i,))


def _render(root: Path) -> str:
    from deco_bench.report.context import build_context
    from deco_bench.report.inputs import load_inputs
    from deco_bench.report.render import render

    return render(build_context(load_inputs(root, environment=False), generated_at="now"))


def test_report_inputs_of_an_unexpected_shape_are_named_in_the_page(tmp_path):
    from deco_bench.report.steps import TrainStepMismatchError

    base = tmp_path / "complete"
    shutil.copytree(COMPLETE, base)
    for m in MODELS:
        write_samples(base, m)
    # every file the report reads (metrics/<m>.json, the numbers-only DVC form of evaluation/<m>.json, is not)
    files = sorted(p.relative_to(base) for p in base.rglob("*.json") if p.parent != base / "metrics")
    originals = {rel: json.loads((base / rel).read_text()) for rel in files}
    rng = random.Random(SEED)
    whole = 0
    for case in range(36):
        rel = rng.choice(files)
        doc = copy.deepcopy(originals[rel])
        where = () if case % 6 == 0 else rng.choice(list(_paths(doc)))  # every 6th: the whole file
        odd = rng.choice(ODD_VALUES)
        if where == ():
            doc = odd
        else:
            cur = doc
            for k in where[:-1]:
                cur = cur[k]
            cur[where[-1]] = odd
        (base / rel).write_text(json.dumps(doc))
        try:
            html = _render(base)
        except TrainStepMismatchError:  # a weights-derived output that no longer records train.steps: by design
            html = None
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"case {case}: {rel} {where} = {odd!r}: {type(e).__name__}: {e}")
        if where == () and not isinstance(odd, (dict, list)) and html is not None and "recordings" not in str(rel):
            whole += 1
            assert str(rel) in html and "unexpected shape" in html, (case, rel, odd)
        assert html is None or "<script>alert(1)</script>" not in html
        (base / rel).write_text(json.dumps(originals[rel]))
    assert whole >= 3  # whole files replaced by a scalar: each named in the page


def test_a_stray_metrics_file_alone_does_not_stop_the_report(tmp_path, monkeypatch):
    from deco_bench.stages import report

    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "notes.json").write_text('{"note": "not a model"}')
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    report.run(str(params), tmp_path, tmp_path / "reports" / "index.html")
    html = (tmp_path / "reports" / "index.html").read_text()
    assert "notes.json" not in html  # not declared, not read
    assert "The evaluate stage did not run (no evaluation/deco.json)." in html
