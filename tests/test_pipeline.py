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
# pipeline outputs committed with dvc.lock (`cache: false` metrics, README "Sharing runs")
COMMITTED_OUTPUTS = ("metrics/", "convergence/speedup.json")
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


def _commit(repo: Path, message: str) -> None:
    """Commit the whole working tree (dvc.lock included); an empty commit when another test committed it already."""
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", message], repo)


def copy_repository(repo: Path) -> Path:
    """The repository's tracked files and the working tree's package, copied to `repo`; not the committed run of the
    default profile (dvc.lock and its metrics files): a fresh pipeline, whose profile has other models."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True).stdout
    for rel in filter(None, tracked.split("\0")):
        if rel == "dvc.lock" or rel.startswith(COMMITTED_OUTPUTS) or rel.endswith("/metrics.json"):
            continue
        if (REPO / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    # the working tree's package and plot templates (they may hold uncommitted edits while developing)
    shutil.copytree(REPO / "deco_bench", repo / "deco_bench", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "plots" / "templates", repo / "plots" / "templates", dirs_exist_ok=True)
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
        m = json.loads((pipeline / "evaluation" / f"{model}.json").read_text())  # the evaluate stage's detail
        flat = json.loads((pipeline / "metrics" / f"{model}.json").read_text())  # its DVC metrics: the same numbers
        for key in ("fd_embed", "is_embed", "precision_embed", "recall_embed", "kid_embed", "class_accuracy"):
            assert np.isfinite(m["metrics"][key]) and flat[key] == m["metrics"][key], key
            lo, hi = m["ci"][key]
            assert lo <= hi
        assert [flat["fd_embed_lo"], flat["fd_embed_hi"]] == m["ci"]["fd_embed"]
        assert [flat["class_accuracy_lo"], flat["class_accuracy_hi"]] == m["ci"]["class_accuracy"]
        assert "fid" not in m["metrics"]  # the embedded feature space is never called FID
    for path in metrics:
        assert isinstance(json.loads(path.read_text()), dict), path
    html = (pipeline / "reports" / "index.html").read_text()
    assert "embedded" in html and "<svg" in html


@pytest.mark.slow
def test_second_repro_does_nothing_and_exp_run_reruns_downstream(pipeline):
    # bytecode that Python writes beside the code (any import without PYTHONDONTWRITEBYTECODE) changes no dependency
    cache = pipeline / "deco_bench" / "metrics" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "api.cpython-311.pyc").write_bytes(b"bytecode")
    (pipeline / "deco_bench" / "stray.pyc").write_bytes(b"bytecode")
    out = _run([str(BIN / "dvc"), "repro"], pipeline)
    ran = re.findall(r"Running stage '([^']+)'", out)
    # only the always-run stages (hardware fingerprint, hashes of files named by parameters); neither changed
    assert sorted(ran) == ["hardware", "inputs"], out
    _commit(pipeline, "results")
    out = _run([str(BIN / "dvc"), "exp", "run", "-S", "train.lr=0.002"], pipeline)
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    for stage in ("train@deco", "train@baseline", "sample@deco", "evaluate@deco", "convergence", "spectrum",
                  "ablation", "report"):
        assert stage in ran, f"{stage} did not re-run:\n{out[-2000:]}"
    assert not ran & {"prepare", "evalnet"}, ran  # they do not read train.lr
    diff, _ = json.JSONDecoder().raw_decode(_run([str(BIN / "dvc"), "metrics", "diff", "--json"], pipeline))
    changed = {path for path, values in diff.items() if values}
    assert any("metrics/deco.json" in p for p in changed), diff


@pytest.mark.slow
def test_plots_show_compares_the_models_on_one_chart_offline(pipeline):
    """`dvc plots show --json` (no network): every model's loss on one chart, DeCo and the baseline's convergence
    with the interval band, and the image plots (Fig. 4, one sample grid per model); the numbers-only metrics files
    of the train and convergence stages."""
    from PIL import Image

    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    models = list(params["models"])
    doc, _ = json.JSONDecoder().raw_decode(_run([str(BIN / "dvc"), "plots", "show", "--json"], pipeline))
    assert not doc.get("errors"), doc["errors"]
    plots = {name: entries[0] for name, entries in doc["data"].items()}

    loss = plots["plots/train_loss.json"]["content"]
    assert loss["title"] == "Training loss of every model"
    rows = loss["data"]["values"]
    per_model = {m: [r["step"] for r in rows if r["model"] == m] for m in models}
    assert len(models) > 1 and all(per_model.values()), per_model  # more than one model, each with its curve
    assert per_model[models[0]] == list(range(1, params["train"]["steps"] + 1))  # smoke: log_every 1
    assert all(isinstance(r["loss"], float) for r in rows)
    assert loss["encoding"]["color"]["field"] == "label"  # one line per model

    conv = plots["convergence/curves.json"]["content"]
    rows = conv["data"]["values"]
    conv_models = {params["convergence"]["deco"], params["convergence"]["baseline"]}
    assert {r["model"] for r in rows} == conv_models
    assert all(isinstance(r["lo"], float) and r["lo"] <= r["hi"] for r in rows)  # every point has its interval
    band = [layer for layer in conv["layer"] if layer["encoding"].get("y2")]
    assert band and band[0]["encoding"]["y"]["field"] == "lo" and band[0]["encoding"]["y2"]["field"] == "hi"
    assert sorted({r["step"] for r in rows}) == params["train"]["eval_ckpt_steps"]

    images = {name for name, p in plots.items() if p["type"] == "image"}
    assert {"spectrum/fig4.svg", *(f"previews/{m}.png" for m in models)} <= images, sorted(plots)
    for m in models:
        with Image.open(pipeline / "previews" / f"{m}.png") as grid:  # a row of 64 px tiles per class
            assert grid.size[1] == params["data"]["num_classes"] * 64 and grid.size[0] > 0
        assert f"plots/train/{m}.json" in plots  # the live per-model curve

    for path in [*(f"metrics/train/{m}.json" for m in models), "convergence/speedup.json"]:
        values = json.loads((pipeline / path).read_text())
        assert values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()), path
    assert json.loads((pipeline / f"metrics/train/{models[0]}.json").read_text())["steps"] == params["train"]["steps"]


@pytest.mark.slow
def test_metrics_files_hold_numbers_only_and_exp_show_has_few_columns(pipeline):
    """Every file dvc.yaml declares as metrics is flat and holds finite numbers only (the detail is in ordinary
    outputs), bench/results.json is an output, not metrics, and `dvc exp show` gets fewer than 60 metric columns."""
    _, metrics = _declared_outputs(pipeline)
    rel = sorted(str(p.relative_to(pipeline)) for p in metrics)
    assert "bench/summary.json" in rel and "bench/results.json" not in rel, rel
    for path in metrics:
        doc = json.loads(path.read_text())
        assert isinstance(doc, dict) and doc, path
        bad = {k: v for k, v in doc.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v)}
        assert not bad, f"{path.relative_to(pipeline)}: not numbers: {bad}"
    summary = json.loads((pipeline / "bench" / "summary.json").read_text())
    assert summary["deco_over_baseline_train_images_per_s"] > 0 and summary["deco_train_images_per_s"] > 0
    assert not any("peak_bytes" in k for k in summary)  # CUDA memory: not measured on CPU, so left out

    rows = json.loads(_run([str(BIN / "dvc"), "exp", "show", "--json"], pipeline))
    ws = next(r for r in rows if r["rev"] == "workspace")
    files = ws["data"]["metrics"]
    columns = {(f, k): v for f, d in files.items() for k, v in (d.get("data") or {}).items()}  # flat: 1 key, 1 column
    assert set(files) == set(rel), sorted(files)
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in columns.values())
    per_file = {f: len(d.get("data") or {}) for f, d in files.items()}
    assert len(columns) < 60, f"{len(columns)} metric columns in dvc exp show: {per_file}"


@pytest.mark.slow
def test_queued_experiments_run_two_variants_in_parallel_and_are_gathered(pipeline, tmp_path, monkeypatch):
    """docs/queue.md on the smoke profile: `deco-bench queue ablation` queues one experiment per model (its train,
    sample and evaluate stages; a changed learning rate so both retrain), `dvc queue start -j 2` runs them side by
    side, each stage holding a GPU group (DECO_BENCH_GPU_GROUPS reaches the workers; on CPU the groups are only
    locks), and both appear in `dvc exp show` with their own metrics changed and the other model's untouched;
    `deco-bench queue gather --report` copies each one's outputs out of the DVC cache, numbers unchanged, and makes
    the report of them; `deco-bench results` makes the tables of the gathered folder."""
    import pandas as pd

    from deco_bench.tools.queue import generic_path

    _commit(pipeline, "before the queue")  # a queued experiment starts from HEAD: dvc.lock must be committed
    models = list(yaml.safe_load((pipeline / "params.yaml").read_text())["models"])[:2]
    cli = [sys.executable, "-m", "deco_bench.tools.cli", "queue"]
    monkeypatch.setenv("DECO_BENCH_GPU_GROUPS", "0;1")
    monkeypatch.setenv("DECO_BENCH_GPU_LOCK_DIR", str(tmp_path / "gpu-locks"))
    monkeypatch.delenv("DECO_BENCH_GPU_GROUP", raising=False)
    out = _run([*cli, "ablation", "--models", ",".join(models), "--prefix", "q-", "-S", "train.lr=0.004", "--jobs",
                "2", "--wait", "--poll", "1", "--timeout", "420"], pipeline, timeout=480)
    for m in models:
        assert f"$ dvc exp run --queue -n q-{m} -S train.lr=0.004 evaluate@{m}\n" in out, out
    assert "$ dvc queue start -j 2\n" in out and "done: 2 experiment(s)" in out, out
    assert "note: the committed dvc.lock" not in out  # prepare and evalnet were committed: no experiment re-ran them
    assert "workers inherit DECO_BENCH_GPU_GROUPS=0;1" in out, out
    log = _run([str(BIN / "dvc"), "queue", "logs", f"q-{models[0]}"], pipeline)
    assert f"Running stage 'train@{models[0]}'" in log and "Stage 'prepare' didn't change, skipping" in log, log
    assert re.search(r"GPU group [12] of 2 \(DECO_BENCH_GPU_GROUPS\): CUDA_VISIBLE_DEVICES=[01]\n", log), log

    rows = json.loads(_run([str(BIN / "dvc"), "exp", "show", "--json"], pipeline))
    head = next(r for r in rows if r["rev"] != "workspace")
    exps = {rec["name"]: rec for e in head["experiments"] or [] for rec in e["revs"]}
    assert {f"q-{m}" for m in models} <= set(exps), sorted(exps)

    def numbers(rec: dict) -> dict[str, dict]:
        return {f: d["data"] for f, d in rec["data"]["metrics"].items() if d.get("data")}

    base = numbers(head)
    for m in models:
        rec = exps[f"q-{m}"]
        assert rec["data"]["params"]["params.yaml"]["data"]["train"]["lr"] == 0.004
        mine = numbers(rec)
        own = [f for f in mine if generic_path(f, m) != f]  # metrics/<m>.json, metrics/train/<m>.json, ...
        assert own, sorted(mine)
        assert any(mine[f] != base.get(f) for f in own), f"q-{m}: metrics of {m} did not change: {own}"
        other = [f for f in mine if f in base and any(generic_path(f, o) != f for o in models if o != m)]
        assert other and all(mine[f] == base[f] for f in other), f"q-{m} changed another model's metrics"
    assert numbers(exps[f"q-{models[0]}"]) != numbers(exps[f"q-{models[1]}"])

    gathered = tmp_path / "gathered"
    out = _run([*cli, "gather", "--prefix", "q-", "--out", str(gathered), "--report"], pipeline)
    assert f"{len(models)} of {len(models)} model(s) gathered" in out, out
    assert yaml.safe_load((gathered / "params.yaml").read_text())["train"]["lr"] == 0.004  # what they ran with
    html = (gathered / "index.html").read_text()  # the report of the queued runs, Tables 1 and 4 included
    assert "The convergence stage did not run" in html and "The spectrum stage did not run" in html
    assert json.loads((gathered / "ablation" / "tables.json").read_text())
    assert all(f"previews/{m}.npz" in html for m in models)
    table = pd.read_csv(gathered / "experiments.csv")
    assert table["model"].tolist() == models and table["found"].all()
    for m, rev in zip(models, table["rev"]):
        rec = exps[f"q-{m}"]
        assert rec["rev"].startswith(rev)
        for f, values in numbers(rec).items():
            if generic_path(f, m) != f:  # the model's own metrics files, as the experiment committed them
                assert json.loads((gathered / f).read_text()) == values, f
        with np.load(gathered / "runs" / m / "samples.npz", allow_pickle=False) as z:
            assert z["arr_0"].dtype == np.uint8
    # the gathered folder is laid out like the repository: `deco-bench results` makes its tables
    _run([sys.executable, "-m", "deco_bench.tools.cli", "results", "--root", str(gathered)], pipeline)
    tables = pd.read_csv(gathered / "reports" / "tables" / "models.csv")
    for m in models:
        fd = tables[(tables["model"] == m) & (tables["metric"] == "fd_embed")]["value"].tolist()
        assert fd == [numbers(exps[f"q-{m}"])[f"metrics/{m}.json"]["fd_embed"]], (m, fd)


def test_the_pipeline_report_reads_well_in_chromium(pipeline, tmp_path):
    """The report of a real run (not fixture files), opened in headless Chromium at 1280x900: this run's headline
    comparison and sample grids in the first screen, no network request, no overlapping chart labels, every image,
    chart and table with a size (tests/report/test_browser.py)."""
    from report.test_browser import CHROMIUM, check_report_page, inspect_page

    if not Path(CHROMIUM).exists():
        pytest.skip("install Debian's chromium (apt-get install chromium) to run the browser check")
    html = (pipeline / "reports" / "index.html").read_text()
    assert html.index('id="headline"') < html.index('id="paper-tables"')
    # 2 models: 3 grids in the first screen and 3 in full; charts: convergence (ours, the paper's), DCT energy, and
    # this run's training and sampling throughput
    check_report_page(inspect_page(pipeline / "reports" / "index.html", tmp_path), min_imgs=6, min_svgs=5,
                      min_tables=8)
