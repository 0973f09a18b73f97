from __future__ import annotations

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


@pytest.fixture
def complete_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(COMPLETE, root)
    for m in MODELS:
        write_samples(root, m)
    return root


@pytest.fixture
def complete_report(complete_root: Path) -> Path:
    from deco_bench.report.context import build_context, load_inputs
    from deco_bench.report.render import render

    out = complete_root / "reports" / "index.html"
    out.parent.mkdir()
    out.write_text(render(build_context(load_inputs(complete_root, environment=False), generated_at="now")))
    return out
