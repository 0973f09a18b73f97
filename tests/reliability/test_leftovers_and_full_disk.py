"""What a kill leaves half-written is removed when the stage starts again (so it never reaches a DVC output), and a
full disk during any write is a DiskSpaceError naming the file, with the previous file intact and no partial one.

The full disk is simulated at the lowest level deco-bench writes through (io.open_for_write): the file's write
fails with ENOSPC after a few bytes, as a real full disk fails mid-write.
"""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _reliability import write_params
from deco_bench import io as dio
from deco_bench.io import DiskSpaceError, atomic_savez, atomic_torch_save, atomic_write_json, atomic_write_text
from deco_bench.io import MissingFileError, is_temporary
from deco_bench.metrics.adm_npz import TooFewImagesError
from deco_bench.stages import convergence, evaluate, prepare
from deco_bench.stages import train as train_stage
from deco_bench.training import loop

LEFTOVER = b"half-written by a killed process"


def temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and is_temporary(p.name))


def leave(folder: Path, target: str, suffix: str = "") -> Path:
    """The temporary file a writer of `folder/target` killed mid-write leaves (atomic_path's naming)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{target}.k1ll3d{suffix}.tmp"
    path.write_bytes(LEFTOVER)
    return path


# ---- leftovers of a kill -----------------------------------------------------------------------------------------

def test_the_train_stage_removes_what_a_killed_run_left_before_it_writes(tmp_path, keep_torch_threads):
    params = write_params(tmp_path / "params.yaml", train={"steps": 2, "eval_ckpt_steps": [1, 2], "ckpt_every": 1})
    prepare.run(str(params), tmp_path / "data")
    run = tmp_path / "runs" / "deco"
    mine = [leave(run, "final.pt"), leave(run, "train_log.jsonl"), leave(run / "eval_ckpts", "step_00000001.pt"),
            leave(run / "ckpt", "step_00000002.pt"), leave(tmp_path / "metrics" / "train", "deco.json")]
    others = [leave(run, "samples.npz", ".npz"), leave(tmp_path / "metrics" / "train", "baseline.json")]
    train_stage.run(str(params), "deco", tmp_path / "data", run, tmp_path / "metrics" / "train" / "deco.json")
    assert not any(p.exists() for p in mine)
    assert temporaries(tmp_path) == sorted(str(p.relative_to(tmp_path)) for p in others)  # other stages' files
    assert sorted(p.name for p in (run / "eval_ckpts").iterdir()) == ["step_00000001.pt", "step_00000002.pt"]


def test_convergence_and_evaluate_remove_their_leftovers_even_when_they_stop_early(tmp_path, keep_torch_threads):
    params = write_params(tmp_path / "params.yaml")
    out = tmp_path / "convergence"
    left = [leave(out / "points" / "deco", "step_00000005.json"), leave(out / "samples" / "baseline", "step_00000020.npz"),
            leave(out, "curves.json")]
    with pytest.raises(MissingFileError, match="reference.npz: reference batch not found"):
        convergence.run(str(params), tmp_path / "runs", tmp_path / "data", tmp_path / "net.pt", out)
    assert not any(p.exists() for p in left) and temporaries(tmp_path) == []
    metrics, detail = leave(tmp_path / "metrics", "deco.json"), leave(tmp_path / "evaluation", "deco.json")
    with pytest.raises(MissingFileError):
        evaluate.run(str(params), "deco", tmp_path / "none.npz", tmp_path / "data", tmp_path / "net.pt",
                     tmp_path / "metrics" / "deco.json")
    assert not metrics.exists() and not detail.exists()


# ---- a full disk ---------------------------------------------------------------------------------------------------

class FullDisk(io.FileIO):
    """A file on a disk that fills up after `room` bytes: the write that crosses it fails with ENOSPC."""

    room = 64

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


@pytest.fixture
def full_disk(monkeypatch):
    def opener(path, mode="wb"):
        raw = FullDisk(path, "wb")
        return io.TextIOWrapper(io.BufferedWriter(raw)) if "b" not in mode else raw
    monkeypatch.setattr(dio, "open_for_write", opener)


WRITERS = {
    "text": lambda p: atomic_write_text(p, "x" * 1000),
    "json": lambda p: atomic_write_json(p, {"values": list(range(500))}),
    "torch": lambda p: atomic_torch_save({"w": torch.zeros(1000)}, p),
    "npz (images)": lambda p: atomic_savez(p, arr_0=np.zeros((4, 16, 16, 3), np.uint8)),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_writer_turns_a_full_disk_into_one_named_error(tmp_path, full_disk, writer):
    target = tmp_path / "out" / "file.bin"
    target.parent.mkdir()
    target.write_bytes(b"the previous, complete version")
    with pytest.raises(DiskSpaceError) as e:
        WRITERS[writer](target)
    assert str(e.value) == (f"{target}: the disk is full (No space left on device); nothing was replaced (the previous "
                            f"file, if any, is intact and no partial file is left): free some space and run the same "
                            f"command again")
    assert target.read_bytes() == b"the previous, complete version" and temporaries(tmp_path) == []


def test_a_full_disk_while_logging_a_training_step_is_named(tmp_path):
    log = tmp_path / "train_log.jsonl"
    with FullDisk(log, "wb") as raw, io.TextIOWrapper(io.BufferedWriter(raw)) as f:
        loop._append_line(f, log, "{}")  # fits
        with pytest.raises(DiskSpaceError, match=f"^{log}: the disk is full .*run the same command again to resume$"):
            loop._append_line(f, log, json.dumps({"step": 2, "loss": list(range(40))}))
        raw.room = 10**6  # closing flushes what is buffered


def test_a_stage_on_a_full_disk_prints_one_line_and_exits_2(tmp_path, full_disk, capsys, monkeypatch,
                                                            keep_torch_threads):
    params = write_params(tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["deco_bench/stages/prepare.py"])
    with pytest.raises(SystemExit) as e:
        prepare.main()
    assert e.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {Path('data') / 'train.npz'}: the disk is full (No space left on device)")
    assert temporaries(tmp_path) == [] and params.exists()


def test_too_few_images_is_refused_by_name(tmp_path):
    from deco_bench.metrics.api import MIN_IMAGES, check_sample_set, compute_all, EMBED_NAMES, Reference
    from deco_bench.metrics.frechet import FeatureStats

    ref = tmp_path / "ref.npz"
    np.savez(ref, arr_0=np.zeros((8, 16, 16, 3), np.uint8))
    for n in (0, 2):
        samples = tmp_path / f"s{n}.npz"
        np.savez(samples, arr_0=np.zeros((n, 16, 16, 3), np.uint8))
        with pytest.raises(TooFewImagesError, match=f"{n} image\\(s\\) requested; every metric needs at least 4"):
            check_sample_set(samples, ref, n)
    np.savez(tmp_path / "small_ref.npz", arr_0=np.zeros((2, 16, 16, 3), np.uint8))
    np.savez(tmp_path / "ok.npz", arr_0=np.zeros((MIN_IMAGES, 16, 16, 3), np.uint8))
    with pytest.raises(TooFewImagesError, match="the reference holds 2 image\\(s\\); every metric needs at least 4"):
        check_sample_set(tmp_path / "ok.npz", tmp_path / "small_ref.npz", MIN_IMAGES)
    feats = np.random.default_rng(0).normal(size=(8, 5))
    reference = Reference(FeatureStats.from_features(feats), None, feats)
    for samples in ({}, {"pool": feats[:3], "logits": feats[:3]}):  # no extracted features at all, or 3
        with pytest.raises(TooFewImagesError, match="the sample set has [03] image\\(s\\); every metric needs at "
                                                    "least 4 on each side"):
            compute_all(samples, reference, names=EMBED_NAMES)
