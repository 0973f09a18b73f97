"""Bad files, data and resources produce their named error before any damage, and leave earlier outputs intact.

Covers the issue "Reliability: runs that survive being killed, inputs that are checked", parts 2-4: truncated or
corrupt checkpoints and npz files, corrupt images and empty class folders, checkpoints that would execute code,
mismatched architectures, wrong checksums and too little disk space. (NaN/Inf in the loss: see
tests/training/test_resume.py::test_nonfinite_loss_stops_and_keeps_last_good_checkpoint.)
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from _reliability import ROOT, stage_cmd, tiny_params_mapping
from deco_bench.config import ModelEntry, TrainParams
from deco_bench.data import ArrayDataset, DataError, ImageFolderDataset, check_image_folder, resolve_imagenet_root
from deco_bench.diffusion.encoders import DinoV2Encoder, SmallEncoder
from deco_bench.io import (ChecksumError, CorruptFileError, DecoBenchError, DiskSpaceError, MissingFileError,
                           UnsafeCheckpointError, atomic_savez, atomic_torch_save, check_free_space, load_npz,
                           safe_torch_load)
from deco_bench.models import build_model, get_preset
from deco_bench.stages import _sampling as sample_stage
from deco_bench.stages import train as train_stage
from deco_bench.models import loading
from deco_bench.training import checkpoint as ckpt
from deco_bench.training.distributed import DistInfo
from deco_bench.training import resume
from deco_bench.training.loop import train

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
META = {"fingerprint": "tiny-test", "model_config": {}}
TP = TrainParams(steps=6, global_batch=8, lr=1e-3, ema_decay=0.9, repa_align_layer=1, ckpt_every=2, keep_last=10,
                 eval_ckpt_steps=[3], log_every=1)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tiny_train(out: Path, steps: int, meta: dict = META):
    rng = np.random.default_rng(0)
    dataset = ArrayDataset(rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8), np.arange(32) % 4)
    torch.manual_seed(0)
    cfg = get_preset("deco-tiny", num_classes=4)
    net = build_model(cfg)
    return train(net, dataset, tp=dataclasses.replace(TP, steps=steps), entry=ModelEntry(preset="deco-tiny"), seed=0,
                 out_dir=out, dist_info=CPU, encoder=SmallEncoder(patch_size=4, dim=16, seed=0),
                 null_label=cfg.num_classes, meta=meta)


class Payload:
    """Unpickling this runs os.mkdir(marker): the stand-in for code hidden in a downloaded checkpoint."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def pickled_callable_file(path: Path, marker: Path, wrap=lambda evil: evil) -> Path:
    torch.save(wrap(Payload(marker)), path)
    return path


# ---- training checkpoints ---------------------------------------------------------------------------------------

def test_truncated_checkpoint_is_named_and_training_falls_back_to_the_previous_one(tmp_path):
    tiny_train(tmp_path / "full", 6)
    run = tmp_path / "run"
    tiny_train(run, 4)  # a run that got to step 4, then was killed while (not) finishing
    (run / "final.pt").unlink()
    newest = run / "ckpt" / ckpt.ckpt_name(4)
    truncate(newest)
    with pytest.raises(CorruptFileError, match=re.escape(str(newest)) + ".*truncated or corrupt"):
        ckpt.load_checkpoint(newest)
    with pytest.raises(CorruptFileError):  # the loop never silently resumes from something else
        ckpt.latest_checkpoint(run / "ckpt")
    earlier = snapshot(run)
    note = resume.reconcile(run, META, 10**9, [3])
    assert note.startswith(f"dropped unreadable checkpoint {newest.name}") and note.endswith("resuming from step 2")
    assert not newest.exists()
    after = snapshot(run)
    del earlier[f"ckpt/{newest.name}"]
    assert after == earlier  # the step-2 checkpoint, the step-3 evaluation checkpoint and the log are untouched
    resumed = tiny_train(run, 6)
    assert resumed.resumed_from == 2
    a, b = safe_torch_load(run / "final.pt")["ema"], safe_torch_load(tmp_path / "full" / "final.pt")["ema"]
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_all_checkpoints_unreadable_starts_over(tmp_path):
    atomic_torch_save({"format": ckpt.FORMAT, "step": 2, "meta": META}, tmp_path / "ckpt" / ckpt.ckpt_name(2))
    (tmp_path / "ckpt" / ckpt.ckpt_name(4)).write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "eval_ckpts").mkdir()
    (tmp_path / "eval_ckpts" / ckpt.ckpt_name(1)).write_bytes(b"x")
    truncate(tmp_path / "ckpt" / ckpt.ckpt_name(2), 0.3)
    note = resume.reconcile(tmp_path, META, 10**9, [])
    assert note.count("dropped unreadable checkpoint") == 2 and note.endswith("starting from scratch")
    assert ckpt.list_checkpoints(tmp_path / "ckpt") == [] and not (tmp_path / "eval_ckpts").exists()


def test_a_file_that_is_not_a_training_checkpoint_is_refused(tmp_path):
    f = tmp_path / ckpt.ckpt_name(2)
    torch.save({"weights": torch.zeros(2)}, f)
    with pytest.raises(CorruptFileError, match="not a deco-bench training checkpoint"):
        ckpt.load_checkpoint(f)
    with pytest.raises(MissingFileError):
        ckpt.load_checkpoint(tmp_path / "nope.pt")


def test_checkpoint_of_other_parameters_is_not_resumed(tmp_path):
    tiny_train(tmp_path, 2, meta={"fingerprint": "old", "model_config": {}})
    with pytest.raises(DecoBenchError, match="different configuration"):
        tiny_train(tmp_path, 4)  # the loop itself refuses to mix trajectories
    note = resume.reconcile(tmp_path, META, 10**9, [])
    assert note.startswith("parameters changed")
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "train_log.jsonl").exists()


# ---- npz files and sample shards ------------------------------------------------------------------------------

def test_truncated_missing_and_pickled_npz(tmp_path):
    f = tmp_path / "a.npz"
    atomic_savez(f, arr_0=np.zeros((4, 8, 8, 3), np.uint8), labels=np.arange(4))
    assert load_npz(f)["arr_0"].shape == (4, 8, 8, 3)
    with pytest.raises(CorruptFileError, match=r"missing array\(s\) \['images'\]"):
        load_npz(f, ["images"])
    truncate(f)
    with pytest.raises(CorruptFileError, match="truncated or corrupt"):
        load_npz(f)
    with pytest.raises(MissingFileError):
        load_npz(tmp_path / "nope.npz")
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.npz"
    with open(evil, "wb") as fh:
        np.savez(fh, arr_0=np.array([Payload(marker)], dtype=object))
    with pytest.raises(CorruptFileError, match="truncated or corrupt"):
        load_npz(evil)
    assert not marker.exists()


def test_truncated_samples_are_refused_by_the_evaluation_reader(tmp_path):
    from deco_bench.metrics import adm_npz

    f = tmp_path / "samples.npz"
    atomic_savez(f, arr_0=np.full((64, 16, 16, 3), 7, np.uint8), labels=np.arange(64))
    truncate(f, 0.6)
    with pytest.raises(CorruptFileError):
        adm_npz.read_images(f)


def test_truncated_training_data_is_named(tmp_path, tiny_pipeline):
    data = tmp_path / "data"
    shutil.copytree(tiny_pipeline["data"], data)
    truncate(data / "train.npz")
    with pytest.raises(CorruptFileError, match="train.npz"):
        train_stage.load_dataset(tiny_pipeline["p"], data)


def test_shard_check_drops_a_truncated_shard(tmp_path):
    f = tmp_path / "shard_00000.npz"
    atomic_savez(f, arr_0=np.zeros((4, 8, 8, 3), np.uint8))
    assert sample_stage._shard_ok(f, 4)
    assert not sample_stage._shard_ok(f, 5) and f.exists()  # wrong size: redone (overwritten), not trusted
    truncate(f)
    assert not sample_stage._shard_ok(f, 4) and not f.exists()


def test_sampling_redoes_truncated_and_corrupt_shards_only(tmp_path, tiny_pipeline, keep_torch_threads):
    p = tiny_pipeline["p"]
    sp = dataclasses.replace(p.sample, num_images=16, num_steps=4)

    def sample(run: Path) -> None:
        sample_stage.sample_set(tiny_pipeline["weights"], run / "samples.npz", run / "sample_shards", sp=sp,
                                seed=sp.seed, num_classes=p.data.num_classes, resolution=p.data.resolution,
                                device_req="cpu", desc="test")

    sample(tmp_path / "clean")
    run = tmp_path / "damaged"
    sample(run)
    shards = run / "sample_shards"
    truncate(shards / "shard_00001.npz")
    (shards / "shard_00002.npz").write_bytes(os.urandom(300))
    (run / "samples.npz").unlink()
    untouched = {n: (shards / n).stat().st_mtime_ns for n in ("shard_00000.npz", "shard_00003.npz")}
    sample(run)
    assert {n: (shards / n).stat().st_mtime_ns for n in untouched} == untouched
    got, ref = load_npz(run / "samples.npz"), load_npz(tmp_path / "clean" / "samples.npz")
    assert np.array_equal(got["arr_0"], ref["arr_0"]) and np.array_equal(got["labels"], ref["labels"])


# ---- images and dataset folders --------------------------------------------------------------------------------

def _image(path: Path, size: int, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (size, size + 3, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path) -> dict:
    root = tmp_path / "imagenet"
    good = [_image(root / "a" / "0.png", 24, 0), _image(root / "a" / "2.png", 24, 2), _image(root / "b" / "0.png", 24, 3)]
    garbage = root / "a" / "1.png"
    garbage.write_bytes(os.urandom(200))  # not an image at all
    cut = _image(root / "b" / "1.jpg", 24, 4)
    truncate(cut, 0.4)  # a JPEG cut by an interrupted download
    return {"root": root, "good": good, "garbage": garbage, "cut": cut}


def test_corrupt_images_are_skipped_and_counted(folder):
    ds = ImageFolderDataset(folder["root"], 16, on_bad_image="skip")
    paths = [p for p, _ in ds.samples]
    bad_a, next_a = paths.index(folder["garbage"]), paths.index(folder["root"] / "a" / "2.png")
    x, label, raw = ds[bad_a]
    x2, label2, raw2 = ds[next_a]
    assert label == label2 == 0 and torch.equal(x, x2) and torch.equal(raw, raw2)  # replaced by the next image
    skipped = ds.verify_all()
    assert set(skipped) == {folder["garbage"], folder["cut"]}
    assert all(reason.startswith("unreadable image") for reason in skipped.values())
    # the replacement of the cut JPEG wraps around to the first image of its class
    x3, label3, _ = ds[paths.index(folder["cut"])]
    assert label3 == 1 and torch.equal(x3, ds[paths.index(folder["root"] / "b" / "0.png")][0])


@pytest.mark.parametrize("which", ["garbage", "cut"])
def test_corrupt_image_is_fatal_when_asked(folder, which):
    ds = ImageFolderDataset(folder["root"], 16, on_bad_image="fail")
    idx = [p for p, _ in ds.samples].index(folder[which])
    with pytest.raises(DataError, match=re.escape(str(folder[which])) + r".*data.on_bad_image = 'fail'"):
        ds[idx]
    assert ds[0][1] == 0  # good images still load


def test_a_class_with_only_corrupt_images_is_an_error(tmp_path):
    root = tmp_path / "imagenet"
    _image(root / "a" / "0.png", 24, 0)
    (root / "b").mkdir()
    (root / "b" / "0.png").write_bytes(b"\x89PNG broken")
    ds = ImageFolderDataset(root, 16, on_bad_image="skip")
    with pytest.raises(DataError, match=re.escape(str(root / "b")) + " has no usable image"):
        ds[1]
    with pytest.raises(DataError, match="has no usable image"):
        ImageFolderDataset(root, 16).verify_all()


def test_images_smaller_than_the_resolution(tmp_path):
    root = tmp_path / "imagenet"
    small = _image(root / "a" / "0.png", 8, 0)
    _image(root / "a" / "1.png", 24, 1)
    with pytest.raises(DataError, match=re.escape(str(small)) + r": image 11x8 is smaller than the resolution 16"):
        ImageFolderDataset(root, 16, min_size_policy="fail")[0]
    ds = ImageFolderDataset(root, 16, min_size_policy="skip")
    assert torch.equal(ds[0][0], ds[1][0]) and "smaller than the resolution" in ds.skipped[small]
    assert ImageFolderDataset(root, 16, min_size_policy="upscale")[0][0].shape == (3, 16, 16)  # ADM's behaviour


def test_folder_layout_errors_name_the_folder(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        check_image_folder(tmp_path / "missing", resolution=16)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is not a directory"):
        check_image_folder(tmp_path / "file", resolution=16)
    (tmp_path / "flat").mkdir()
    _image(tmp_path / "flat" / "x.png", 16, 0)
    with pytest.raises(DataError, match="has no class sub-folders"):
        check_image_folder(tmp_path / "flat", resolution=16)
    _image(tmp_path / "two" / "a" / "x.png", 16, 0)
    (tmp_path / "two" / "b").mkdir()
    (tmp_path / "two" / "b" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "two" / "b")) + " has no images"):
        check_image_folder(tmp_path / "two", resolution=16)
    with pytest.raises(DataError, match="has 2 class folders but data.num_classes = 3"):
        check_image_folder(tmp_path / "two", resolution=16, expect_num_classes=3)
    monkeypatch.delenv("DECO_IMAGENET", raising=False)
    with pytest.raises(DataError, match="data.imagenet_root"):
        resolve_imagenet_root("")


def test_prepare_stage_with_an_empty_class_folder_exits_2_with_one_line(tmp_path):
    root = tmp_path / "imagenet"
    _image(root / "n01" / "0.JPEG", 24, 0)
    (root / "n02").mkdir(parents=True)
    raw = tiny_params_mapping(data={"source": "imagenet", "imagenet_root": str(root), "num_classes": 2})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "data"
    out.mkdir()
    (out / "info.json").write_text('{"earlier": "output"}\n')  # what an earlier, successful prepare left
    r = subprocess.run(stage_cmd("prepare", "--params", tmp_path / "params.yaml", "--out", out), cwd=tmp_path,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0].startswith(f"error: class folder {root / 'n02'} has no images")
    assert snapshot(out) == {"info.json": b'{"earlier": "output"}\n'}


# ---- files that would run code, do not fit, or are not what they claim ---------------------------------------

def _loaders(tmp_path: Path):
    from deco_bench.models import official
    from deco_bench.metrics.embed_net import load_feature_net

    yield "safe_torch_load", lambda f: safe_torch_load(f)
    yield "load_checkpoint", lambda f: ckpt.load_checkpoint(f)
    yield "load_ema_model", lambda f: sample_stage.load_ema_model(f, torch.device("cpu"))
    yield "SmallEncoder.from_file", lambda f: SmallEncoder.from_file(f)
    yield "load_feature_net", lambda f: load_feature_net(f)
    yield "load_official", lambda f: official.load_official(ROOT / "tests/fixtures/models/official_deco.yaml", f)


@pytest.mark.parametrize("wrap", [lambda e: e, lambda e: {"format": ckpt.FORMAT, "step": 2, "ema": {"w": e}},
                                  lambda e: collections.OrderedDict(state_dict={"x": torch.zeros(1), "y": e})],
                         ids=["bare", "inside-a-checkpoint", "inside-a-state-dict"])
def test_checkpoint_with_a_pickled_callable_is_refused_not_executed(tmp_path, wrap):
    marker = tmp_path / "payload-ran"
    f = pickled_callable_file(tmp_path / "evil.pt", marker, wrap)
    for name, load in _loaders(tmp_path):
        with pytest.raises(UnsafeCheckpointError, match="not executed") as info:
            load(f)
        assert "posix.mkdir" in str(info.value) or "os.mkdir" in str(info.value), name
        assert not marker.exists(), f"{name} executed the payload"


def test_the_payload_is_live_with_an_unsafe_loader(tmp_path):
    # the control: the same file does run its code under a plain unpickler (so the test above can fail)
    marker = tmp_path / "payload-ran"
    f = pickled_callable_file(tmp_path / "evil.pt", marker)
    torch.load(f, weights_only=False)
    assert marker.is_dir()


def test_pickled_callable_in_the_resume_folder_is_dropped_not_executed(tmp_path):
    marker = tmp_path / "payload-ran"
    (tmp_path / "ckpt").mkdir()
    pickled_callable_file(tmp_path / "ckpt" / ckpt.ckpt_name(2), marker)
    with pytest.raises(UnsafeCheckpointError):
        ckpt.latest_checkpoint(tmp_path / "ckpt")
    assert resume.reconcile(tmp_path, META, 10**9, []).endswith("starting from scratch")
    assert not marker.exists()


def test_mismatched_architecture_names_the_keys(tmp_path):
    deco = build_model(get_preset("deco-tiny", num_classes=4))
    baseline = build_model(get_preset("baseline-tiny", num_classes=4))
    with pytest.raises(loading.ArchitectureMismatchError) as info:
        loading.load_weights_strict(baseline, deco.state_dict(), "final.pt")
    msg = str(info.value)
    only_deco = sorted(set(deco.state_dict()) - set(baseline.state_dict()))
    only_base = sorted(set(baseline.state_dict()) - set(deco.state_dict()))
    assert only_deco and only_base
    assert f"unexpected keys: {only_deco[0]}" in msg and f"missing keys: {only_base[0]}" in msg
    wide = build_model(get_preset("deco-tiny", num_classes=4, hidden_size=32))
    with pytest.raises(loading.ArchitectureMismatchError, match=r"shape mismatches: .*checkpoint \(64.*\) vs model \(32"):
        loading.load_weights_strict(wide, deco.state_dict(), "final.pt")
    # a weights file whose stored config does not describe its weights (here: one DiT block more)
    cfg = dataclasses.asdict(get_preset("deco-tiny", num_classes=4, depth=3))
    atomic_torch_save({"step": 1, "ema": deco.state_dict(), "meta": {"model_config": cfg}}, tmp_path / "final.pt")
    with pytest.raises(loading.ArchitectureMismatchError, match=r"missing keys: blocks\.2\."):
        sample_stage.load_ema_model(tmp_path / "final.pt", torch.device("cpu"))


def test_weights_with_the_wrong_checksum(tmp_path):
    enc = SmallEncoder(patch_size=4, dim=16, seed=3)
    f = tmp_path / "small.pt"
    torch.save(enc.state_dict(), f)
    with pytest.raises(ChecksumError, match="0" * 64):
        SmallEncoder.from_file(f, sha256="0" * 64)
    right = hashlib.sha256(f.read_bytes()).hexdigest()
    loaded = SmallEncoder.from_file(f, sha256=right.upper())
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), enc.state_dict().values()))
    junk = tmp_path / "dinov2_vitb14_pretrain.pth"
    junk.write_bytes(b"not the weights")  # the checksum is checked before the file is even opened as a checkpoint
    with pytest.raises(ChecksumError, match="does not match the expected " + "1" * 64):
        DinoV2Encoder.from_weights(junk, sha256="1" * 64)


# ---- disk space ---------------------------------------------------------------------------------------------------

def test_check_free_space_says_how_much_is_needed(tmp_path):
    check_free_space(tmp_path / "not" / "yet", 1, "tiny")  # a folder that does not exist yet: its parent's disk
    with pytest.raises(DiskSpaceError, match=r"huge needs about 1048576\.00 GiB in .* but only [\d.]+ GiB is free"):
        check_free_space(tmp_path, 2**50, "huge")


def _no_space(monkeypatch, free: int = 4096):
    import deco_bench.io as dio

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(dio.shutil, "disk_usage", lambda path: usage(10**12, 10**12 - free, free))


def test_train_stage_stops_before_touching_anything_when_the_disk_is_full(tmp_path, tiny_pipeline, monkeypatch,
                                                                          keep_torch_threads):
    out = tmp_path / "run"
    # earlier outputs of a run with other parameters: a real start would delete them, a refused one must not
    tiny_train(out, 2, meta={"fingerprint": "earlier", "model_config": {}})
    before = snapshot(out)
    _no_space(monkeypatch)
    with pytest.raises(DiskSpaceError, match=r"train@deco \(checkpoints\) needs about 0\.\d\d GiB"):
        train_stage.run(str(tiny_pipeline["params"]), "deco", tiny_pipeline["data"], out, tmp_path / "summary.json")
    assert snapshot(out) == before and not (tmp_path / "summary.json").exists()


def test_sample_stage_stops_before_starting_when_the_disk_is_full(tmp_path, tiny_pipeline, monkeypatch):
    p = tiny_pipeline["p"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "samples.npz").write_bytes(b"earlier samples")
    _no_space(monkeypatch, free=100)
    with pytest.raises(DiskSpaceError, match="sample deco"):
        sample_stage.sample_set(tiny_pipeline["weights"], run / "samples.npz", run / "sample_shards", sp=p.sample,
                                seed=0, num_classes=4, resolution=16, device_req="cpu", desc="sample deco")
    assert snapshot(run) == {"samples.npz": b"earlier samples"}


# ---- safe loading everywhere -------------------------------------------------------------------------------------

def test_no_unsafe_loader_in_the_package():
    """Every torch.load goes through io.safe_torch_load (weights_only=True + allow-list); no np.load pickles."""
    offenders = []
    for f in sorted((ROOT / "deco_bench").rglob("*.py")):
        text = f.read_text()
        rel = f.relative_to(ROOT)
        for i, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            if "allow_pickle=True" in code or "weights_only=False" in code or "pickle.load" in code:
                offenders.append(f"{rel}:{i}: {line.strip()}")
            if "torch.load(" in code and rel != Path("deco_bench/io.py"):
                offenders.append(f"{rel}:{i}: {line.strip()}")
    assert offenders == []
