"""`deco-bench queue`: the pure parts (commands, what -C copies, dvc output parsing, what gather takes) on captured
dvc output, and `ablation --dry-run` on the ablation-l profile. The queue itself runs in tests/test_pipeline.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deco_bench import profiles
from deco_bench.tools import queue

ROOT = Path(__file__).resolve().parents[2]

# `dvc queue status` of dvc 3.67 (two finished, one running, one queued, one failed; the name of a task run twice:
# its later row)
STATUS = """\
Task     Name               Created    Status
7b1f3c7  lr-a               06:19 PM   Success
3ec780c  q-freqfm_weight_2  06:19 PM   Running
6fbf8f4  q-deco             Nov 29, 2026   Queued
400d3ef  q-baseline         06:24 PM   Failed
9a0b1c2  q-baseline         06:30 PM   Success

Worker status: 1 active, 0 idle
"""

LOCK = {"schema": "2.0", "stages": {
    "train@deco": {"outs": [
        {"path": "runs/deco/final.pt", "md5": "a" * 32, "size": 90_000_000},
        {"path": "runs/deco/ckpt", "md5": "b" * 32 + ".dir", "size": 10, "nfiles": 2},
        {"path": "metrics/train/deco.json", "md5": "c" * 32, "size": 120}]},
    "sample@deco": {"outs": [{"path": "runs/deco/samples.npz", "md5": "d" * 32, "size": 5_000}]},
    "evaluate@deco": {"outs": [{"path": "metrics/deco.json", "md5": "e" * 32, "size": 300}]},
    "evaluate@baseline": {"outs": [{"path": "metrics/baseline.json", "md5": "f" * 32, "size": 300}]},
}}


def test_one_experiment_per_model_targets_its_evaluate_stage_then_the_workers_start():
    cmds = queue.queue_commands(["deco", "pixnerd"], prefix="abl-", sets=["train.steps=1000"], copies=["weights"],
                                jobs=4)
    assert cmds == [
        ["dvc", "exp", "run", "--queue", "-n", "abl-deco", "-S", "train.steps=1000", "-C", "weights", "evaluate@deco"],
        ["dvc", "exp", "run", "--queue", "-n", "abl-pixnerd", "-S", "train.steps=1000", "-C", "weights",
         "evaluate@pixnerd"],
        ["dvc", "queue", "start", "-j", "4"],
    ]
    assert queue.queue_commands(["deco"]) == [["dvc", "exp", "run", "--queue", "-n", "deco", "evaluate@deco"]]


def test_copy_paths_are_the_folders_of_relative_files_and_nothing_inside_another():
    files = [Path("weights/dinov2_vitb14_pretrain.pth"), Path("weights/weights-inception.pth"),
             Path("weights/ref/VIRTUAL_imagenet256_labeled.npz"), Path("/data/shared/ref.npz"), Path("ref.npz"),
             Path("runs/deco256/eval_ckpts/step_100.pt")]
    assert queue.copy_paths(files) == ["ref.npz", "runs/deco256/eval_ckpts", "weights"]
    assert queue.copy_paths([]) == []


def test_queue_status_is_read_per_experiment_name():
    assert queue.parse_queue_status(STATUS) == {"lr-a": "Success", "q-freqfm_weight_2": "Running",
                                                "q-deco": "Queued", "q-baseline": "Success"}
    assert queue.parse_queue_status("No experiment tasks in the queue.\n\nWorker status: 0 active, 0 idle\n") == {}


def test_exp_show_records_by_name_and_the_files_of_a_models_stages():
    exp_show = [
        {"rev": "workspace", "name": None, "data": {"metrics": {}}, "experiments": None},
        {"rev": "23949c9", "name": "master", "data": {"metrics": {}}, "experiments": [
            {"name": "q-deco", "executor": None, "revs": [{"rev": "8f177dae", "name": "q-deco", "data": {"x": 1}}]},
            {"name": "q-baseline", "executor": {"state": "queued"}, "revs": [{"rev": "4e1", "name": None,
                                                                              "data": {"y": 2}}]},
            {"name": "q-noname", "executor": None, "revs": [{"rev": "9d6", "name": None, "data": {"y": 3}}]},
            {"name": "q-run", "executor": {"state": "running"}, "revs": [{"rev": "5f2", "name": "q-run",
                                                                          "data": {"z": 3}}]},
            {"name": "q-bad", "executor": {"state": "failed"}, "revs": [{"rev": "6a3", "name": "q-bad",
                                                                         "data": {"z": 4}}]},
            {"name": "q-ok", "executor": {"state": "success"}, "revs": [{"rev": "7b4", "name": "q-ok",
                                                                         "data": {"z": 5}}]},
            {"name": "q-empty", "executor": None, "revs": [{"rev": "8c5", "name": "q-empty", "data": None}]}]}]
    recs = queue.experiment_records(exp_show)
    assert sorted(recs) == ["q-deco", "q-noname", "q-ok"] and recs["q-deco"]["rev"] == "8f177dae"
    take, skip = queue.stage_files(LOCK, "deco", max_bytes=64 * 2**20)
    assert take == ["metrics/train/deco.json", "runs/deco/samples.npz", "metrics/deco.json"]
    assert skip == ["runs/deco/final.pt (86 MB > --max-mb)", "runs/deco/ckpt (a folder)"]
    assert queue.stage_files(LOCK, "pixnerd", max_bytes=1) == ([], [])


def test_a_variants_row_names_its_columns_generically_so_rows_line_up():
    assert queue.generic_path("metrics/train/deco.json", "deco") == "metrics/train/{model}.json"
    assert queue.generic_path("runs/deco/samples.npz", "deco") == "runs/{model}/samples.npz"
    assert queue.generic_path("metrics/deco_no_freqfm.json", "deco") == "metrics/deco_no_freqfm.json"
    rec = {"rev": "8f177dae859af9737b65", "data": {"metrics": {
        "metrics/deco.json": {"data": {"fd_embed": 7.2, "fd_embed_lo": 6.6, "note": "text", "ok": True}},
        "metrics/baseline.json": {"data": {"fd_embed": 7.3}},
        "metrics/train/deco.json": {"error": {"type": "FileNotFoundError"}}}}}
    row = queue.variant_row("deco", "q-deco", rec, ["metrics/deco.json", "metrics/train/deco.json"])
    assert row == {"model": "deco", "experiment": "q-deco", "rev": "8f177dae859a", "found": True,
                   "metrics/{model}.json:fd_embed": 7.2, "metrics/{model}.json:fd_embed_lo": 6.6}
    assert queue.variant_row("jit", "q-jit", None, []) == {"model": "jit", "experiment": "q-jit", "rev": None,
                                                           "found": False}


def test_dry_run_on_the_ablation_grid_prints_every_command_and_copies_the_weights_folder(tmp_path, capsys,
                                                                                          monkeypatch):
    monkeypatch.delenv("DECO_BENCH_GPU_GROUPS", raising=False)
    profiles.use("ablation-l", tmp_path / "params.yaml")
    grid = list(profiles.load_profile("ablation-l").models)
    assert queue.main(["ablation", "--root", str(tmp_path), "--dry-run", "--jobs", "4"]) == 2
    assert capsys.readouterr().err.startswith("error: the parameters name file(s) that are not here: "
                                              "weights/dinov2_vitb14_pretrain.pth, ")
    for name in ("dinov2_vitb14_pretrain.pth", "weights-inception-2015-12-05-6726825d.pth",
                 "VIRTUAL_imagenet256_labeled.npz"):
        (tmp_path / "weights").mkdir(exist_ok=True)
        (tmp_path / "weights" / name).write_bytes(b"x")
    assert queue.main(["ablation", "--root", str(tmp_path), "--dry-run", "--jobs", "4", "--prefix", "abl-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [line for line in lines if line.startswith("$ ")]
    assert commands == [f"$ dvc exp run --queue -n abl-{m} -C weights evaluate@{m}" for m in grid] + [
        "$ dvc queue start -j 4"]
    assert len(grid) == 17
    assert "note: the committed dvc.lock has no prepare and evalnet" in lines[0]  # not even a git repository here
    assert any(line.startswith("note: DECO_BENCH_GPU_GROUPS is not set") for line in lines)
    assert not (tmp_path / ".dvc").exists()  # a dry run runs nothing

    assert queue.main(["ablation", "--root", str(tmp_path), "--dry-run", "--models", "deco,nope"]) == 2
    assert "--models: nope not in params.yaml" in capsys.readouterr().err


def test_the_cli_runs_it_and_bad_arguments_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "deco_bench.tools.cli", "queue", "ablation", "--jobs", "0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "--jobs must be at least 1" in proc.stderr
