"""The whole DVC pipeline on the seconds-scale `smoke` profile, in a temporary copy of the repository.

Checks that every output dvc.yaml declares exists and is well-formed, that a second `dvc repro` does nothing, and
that `dvc exp run -S` with a changed training parameter re-runs training and everything downstream, with
`dvc metrics diff` showing the change.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> str:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1",
               PYTHONPATH=str(cwd))
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _declared_outputs(repo: Path) -> tuple[list[Path], list[Path]]:
    """(every out/metrics/plots path, the metrics files) of dvc.yaml, with foreach expanded by DVC itself."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs, metrics = [], []
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            outs.append(repo / out["path"])
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for name, stage in dvc_yaml["stages"].items():
        keys = list(params[stage["foreach"][2:-1]] or {}) if "foreach" in stage else [None]  # ${models}, ...
        body = stage.get("do", stage)
        for key in keys:
            for entry in body.get("metrics", []):
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                metrics.append(repo / path.replace("${key}", key or ""))
    return outs, metrics


def copy_repository(repo: Path) -> Path:
    """The repository's tracked files (but dvc.lock) and the working tree's package, copied to `repo`."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True).stdout
    for rel in filter(None, tracked.split("\0")):
        if rel == "dvc.lock":  # a fresh pipeline: the lock of the repository's own run describes another profile
            continue
        if (REPO / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    # the working tree's package (it may hold uncommitted edits while developing)
    shutil.copytree(REPO / "deco_bench", repo / "deco_bench", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return repo


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    repo = copy_repository(tmp_path_factory.mktemp("pipeline") / "repo")
    _run([sys.executable, "-m", "deco_bench.tools.cli", "profile", "use", "smoke"], repo)
    _run(["git", "init", "-q"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "smoke"], repo)
    if not (repo / ".dvc").exists():
        _run([str(BIN / "dvc"), "init", "-q"], repo)
    _run([str(BIN / "dvc"), "repro"], repo)
    return repo


@pytest.mark.slow
def test_every_declared_output_exists_and_is_well_formed(pipeline):
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    outs, metrics = _declared_outputs(pipeline)
    missing = [str(p.relative_to(pipeline)) for p in outs + metrics if not p.exists()]
    assert not missing, f"declared outputs missing: {missing}"
    n, res = params["sample"]["num_images"], params["data"]["resolution"]
    for model in params["models"]:
        with np.load(pipeline / "runs" / model / "samples.npz", allow_pickle=False) as z:
            assert z["arr_0"].shape == (n, res, res, 3) and z["arr_0"].dtype == np.uint8
            assert z["labels"].tolist() == [i % params["data"]["num_classes"] for i in range(n)]
        m = json.loads((pipeline / "metrics" / f"{model}.json").read_text())
        for key in ("fd_embed", "is_embed", "precision_embed", "recall_embed", "kid_embed"):
            assert np.isfinite(m["metrics"][key]), key
            lo, hi = m["ci"][key]
            assert lo <= hi
        assert "fid" not in m["metrics"]  # the embedded feature space is never called FID
    for path in metrics:
        assert isinstance(json.loads(path.read_text()), dict), path
    html = (pipeline / "reports" / "index.html").read_text()
    assert "embedded" in html and "<svg" in html


@pytest.mark.slow
def test_second_repro_does_nothing_and_exp_run_reruns_downstream(pipeline):
    out = _run([str(BIN / "dvc"), "repro"], pipeline)
    ran = re.findall(r"Running stage '([^']+)'", out)
    # only the always-run stages (hardware fingerprint, hashes of files named by parameters); neither changed
    assert sorted(ran) == ["hardware", "inputs"], out
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], pipeline)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "results"], pipeline)
    out = _run([str(BIN / "dvc"), "exp", "run", "-S", "train.lr=0.002"], pipeline)
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    for stage in ("train@deco", "train@baseline", "sample@deco", "evaluate@deco", "convergence", "spectrum",
                  "ablation", "report"):
        assert stage in ran, f"{stage} did not re-run:\n{out[-2000:]}"
    assert not ran & {"prepare", "evalnet"}, ran  # they do not read train.lr
    diff, _ = json.JSONDecoder().raw_decode(_run([str(BIN / "dvc"), "metrics", "diff", "--json"], pipeline))
    changed = {path for path, values in diff.items() if values}
    assert any("metrics/deco.json" in p for p in changed), diff
