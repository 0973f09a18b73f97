from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "report"
COMPLETE = FIXTURES / "complete"
MODELS = ("deco", "baseline", "deco_no_freqfm")


def write_samples(root: Path, model: str, n: int = 16, side: int = 8, classes: int = 4) -> None:
    rng = np.random.default_rng(sum(map(ord, model)))
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    labels = np.arange(n) % classes
    (root / "previews").mkdir(parents=True, exist_ok=True)
    np.savez(root / "previews" / f"{model}.npz", arr_0=images, labels=labels)


def set_train_step(root: Path, step: int) -> None:
    """Every weights-derived output of a fixture tree records `step`, as the outputs of a `step`-step run would
    (evaluation and previews "train_step", metrics/train "steps", ablation/tables.json protocol.train_steps)."""
    for pattern, key in (("evaluation/*.json", "train_step"), ("previews/*.json", "train_step"),
                         ("metrics/train/*.json", "steps")):
        for f in root.glob(pattern):
            f.write_text(json.dumps({**json.loads(f.read_text()), key: step}))
    tables = json.loads((root / "ablation/tables.json").read_text())
    tables["protocol"]["train_steps"] = step
    (root / "ablation/tables.json").write_text(json.dumps(tables))


@pytest.fixture
def complete_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(COMPLETE, root)
    for m in MODELS:
        write_samples(root, m)
    rng = np.random.default_rng(7)  # the held-out real crops the samples section shows first
    np.savez(root / "data" / "heldout.npz", arr_0=rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8),
             labels=np.arange(16) % 4)
    return root


@pytest.fixture
def complete_report(complete_root: Path) -> Path:
    from deco_bench.report.context import build_context
    from deco_bench.report.inputs import load_inputs
    from deco_bench.report.render import render

    out = complete_root / "reports" / "index.html"
    out.parent.mkdir()
    out.write_text(render(build_context(load_inputs(complete_root, environment=False), generated_at="now")))
    return out
