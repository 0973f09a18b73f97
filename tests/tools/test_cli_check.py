"""`deco-bench check`: every parameter check, what this machine can honour, and with --files every named file,
each problem in one line with exit status 2 and nothing written."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from deco_bench.tools import cli

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "experiments" / "default.yaml").read_text())


def write(tmp_path: Path, **sections) -> Path:
    raw = copy.deepcopy(DEFAULT)
    for name, values in sections.items():
        raw[name].update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_default_is_valid_and_names_no_file(tmp_path, capsys):
    assert cli.main(["check", "--params", str(write(tmp_path)), "--files"]) == 0
    assert capsys.readouterr().out.strip().endswith("it names no weights, reference or init_from file")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_refused_in_one_line(tmp_path, capsys):
    path = write(tmp_path, run={"device": "cuda"})
    before = tree(tmp_path)
    assert cli.main(["check", "--params", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: invalid parameter run.device: 'cuda' is asked for but no CUDA device is visible on this "
                   "machine"]
    assert tree(tmp_path) == before


def test_files_names_a_missing_file_with_its_hash_and_source(tmp_path, capsys):
    ref = tmp_path / "VIRTUAL_imagenet256_labeled.npz"
    path = write(tmp_path, evaluate={"reference": str(ref), "inception_weights": str(tmp_path / "inc.pth")})
    assert cli.main(["check", "--params", str(path)]) == 0  # parameters alone are valid
    capsys.readouterr()
    before = tree(tmp_path)
    assert cli.main(["check", "--params", str(path), "--files"]) == 2
    err = capsys.readouterr().err
    assert "evaluate.inception_weights" in err and "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2" in err
    assert "evaluate.reference" in err and "VIRTUAL_imagenet256_labeled.npz" in err
    assert "Traceback" not in err and tree(tmp_path) == before


def test_a_bad_model_name_is_refused_by_check_in_a_subprocess(tmp_path):
    raw = copy.deepcopy(DEFAULT)
    raw["models"]["../evil"] = {"preset": "deco-s", "label": "x"}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "deco_bench.tools.cli", "check", "--params", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "models.../evil: invalid model name '../evil'" in proc.stderr
    assert not (tmp_path / "runs").exists()
