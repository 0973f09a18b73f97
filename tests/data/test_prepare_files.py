"""The prepare stage (the first to run) checks every weights/reference file the parameters name before anything
else: a missing or wrong file stops it with one named line and no output; good files are recorded in info.json."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deco_bench import profiles
from deco_bench.io import ChecksumError, MissingFileError, sha256_file
from deco_bench.metrics import weights
from deco_bench.stages import prepare

ROOT = Path(__file__).resolve().parents[2]
INCEPTION_SHA = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
TINY_DATA = {"resolution": 16, "num_classes": 2, "train_per_class": 2, "ref_per_class": 2}


def write_params(tmp_path: Path, **evaluate) -> Path:
    raw = profiles.resolve("default", ROOT / "experiments")
    raw["data"].update(TINY_DATA)
    raw["run"]["threads"] = 1
    raw["evaluate"].update(evaluate)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_missing_weights_stop_prepare_before_anything_is_written(tmp_path):
    inception = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    params = write_params(tmp_path, inception_weights=str(inception))
    out = tmp_path / "data"
    with pytest.raises(MissingFileError, match=f"^evaluate.inception_weights: {re.escape(str(inception))} not found"):
        prepare.run(str(params), out)
    assert not out.exists()


def test_wrong_hash_stops_the_stage_with_one_named_line(tmp_path):
    inception = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    inception.write_bytes(b"not the Inception weights")
    params = write_params(tmp_path, inception_weights=str(inception))
    out = tmp_path / "data"
    r = subprocess.run([sys.executable, "-m", "deco_bench.stages.prepare", "--params", str(params), "--out", str(out)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().splitlines() == [
        f"error: evaluate.inception_weights: {inception} has sha256 {sha256_file(inception)}, expected "
        f"{INCEPTION_SHA} (FID/sFID/IS/precision/recall/KID (ADM protocol); corrupt, truncated or a different file). "
        "Get it from https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        f"weights-inception-2015-12-05-6726825d.pth and place it at {inception} (pytorch-fid's "
        "pt_inception-2015-12-05-6726825d.pth (https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth) is the same file: renaming it is fine)."]
    assert not out.exists()


def test_good_files_pass_and_their_hashes_are_recorded(tmp_path, monkeypatch):
    inception = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    inception.write_bytes(b"a small stand-in for the Inception weights")
    reference = tmp_path / "VIRTUAL_imagenet256_labeled.npz"
    reference.write_bytes(b"no published hash: presence only")
    monkeypatch.setitem(weights.MANIFEST, weights.INCEPTION, dataclasses.replace(
        weights.MANIFEST[weights.INCEPTION], sha256=sha256_file(inception)))
    params = write_params(tmp_path, inception_weights=str(inception), reference=str(reference))
    out = tmp_path / "data"
    prepare.run(str(params), out)
    info = json.loads((out / "info.json").read_text())
    assert info["files"] == {
        "evaluate.inception_weights": {"path": str(inception), "sha256": sha256_file(inception)},
        "evaluate.reference": {"path": str(reference), "sha256": sha256_file(reference)}}
    assert (out / "train.npz").is_file()


def test_no_named_file_records_none(tmp_path):
    out = tmp_path / "data"
    prepare.run(str(write_params(tmp_path)), out)
    assert json.loads((out / "info.json").read_text())["files"] == {}


def test_wrong_hash_in_process_is_a_checksum_error(tmp_path):
    inception = tmp_path / "i.pth"
    inception.write_bytes(b"x")
    with pytest.raises(ChecksumError, match=INCEPTION_SHA):
        prepare.run(str(write_params(tmp_path, inception_weights=str(inception))), tmp_path / "data")
