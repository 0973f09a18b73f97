"""The numbers-only DVC metrics files: io.numbers_only / atomic_write_metrics refuse anything but finite numbers, and
metrics.api.flat_metrics / unflat_metrics turn an evaluation result into its flat form and back for compare()."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deco_bench.io import atomic_write_metrics, numbers_only
from deco_bench.metrics import api

RESULT = {"metrics": {"fd_embed": 3.5, "is_embed": 2.0, "class_accuracy": 0.75, "kid_embed": 0.01},
          "ci": {"fd_embed": [3.0, 4.25], "is_embed": [1.5, 2.5], "class_accuracy": [0.5, 1.0]},
          "bootstrap": {"fd_embed": [3.1, 3.9]}, "skipped": {"precision_embed": "no images"}, "num_images": 16,
          "extractor": {"name": "embed-net"}}


def test_flat_metrics_keeps_every_value_and_the_headline_bounds_only():
    flat = api.flat_metrics(RESULT)
    assert flat == {"fd_embed": 3.5, "fd_embed_lo": 3.0, "fd_embed_hi": 4.25, "is_embed": 2.0,
                    "class_accuracy": 0.75, "class_accuracy_lo": 0.5, "class_accuracy_hi": 1.0, "kid_embed": 0.01}
    assert list(flat)[:3] == ["fd_embed", "fd_embed_lo", "fd_embed_hi"]  # bounds beside their value
    # every bound on request (the released Table 2 rows); a skipped metric is absent, never null
    every = api.flat_metrics(RESULT, bounds=None)
    assert every["is_embed_lo"] == 1.5 and "kid_embed_lo" not in every and "precision_embed" not in every
    assert numbers_only(every) == every


def test_unflat_metrics_gives_compare_its_intervals_back():
    doc = api.unflat_metrics({**api.flat_metrics(RESULT), "num_images": 16, "note": "ignored"})
    assert doc["metrics"] == {**RESULT["metrics"], "num_images": 16}
    assert doc["ci"] == {"fd_embed": [3.0, 4.25], "class_accuracy": [0.5, 1.0]}
    other = api.unflat_metrics(api.flat_metrics({"metrics": {"fd_embed": 5.0}, "ci": {"fd_embed": [4.5, 5.5]}}))
    c = api.compare(doc, other)["fd_embed"]
    assert c["method"] == "ci-overlap" and c["exceeds_interval"] is True and c["difference"] == 1.5
    # a lone _lo (no _hi) is a metric of its own, not an interval
    assert api.unflat_metrics({"x": 1.0, "x_lo": 0.5}) == {"metrics": {"x": 1.0, "x_lo": 0.5}, "ci": {}}


@pytest.mark.parametrize("bad", [{"label": "DeCo"}, {"v": None}, {"v": True}, {"v": [1.0, 2.0]}, {"v": {"a": 1}},
                                 {"v": float("nan")}, {"v": float("inf")}, [1.0], "text"])
def test_numbers_only_refuses_anything_else(bad, tmp_path):
    with pytest.raises(ValueError):
        numbers_only(bad)
    with pytest.raises(ValueError):
        atomic_write_metrics(tmp_path / "m.json", bad)
    assert not (tmp_path / "m.json").exists()


def test_atomic_write_metrics_converts_numpy_scalars(tmp_path):
    atomic_write_metrics(tmp_path / "m.json", {"n": np.int64(3), "x": np.float32(0.5), "y": 2})
    got = json.loads((tmp_path / "m.json").read_text())
    assert got == {"n": 3, "x": 0.5, "y": 2} and isinstance(got["n"], int)
