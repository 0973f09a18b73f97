"""ImageNet folder reader: ADM centre-crop parity with the official code, and every bad input."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deco_bench.data import (
    DataError,
    ImageFolderDataset,
    adm_center_crop,
    check_image_folder,
    resolve_imagenet_root,
    uint8_image_to_tensors,
)
from deco_bench.io import DecoBenchError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "data"


def _load_golden_maker():
    spec = importlib.util.spec_from_file_location("data_make_goldens", FIXTURES / "make_goldens.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines CASES and synthetic_image; imports no official code at import time
    return module


GOLDEN = _load_golden_maker()


# --- ADM centre crop ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(GOLDEN.CASES))
def test_adm_center_crop_matches_official_byte_for_byte(case):
    width, height, mode, size = GOLDEN.CASES[case]
    with np.load(FIXTURES / "adm_center_crop_goldens.npz", allow_pickle=False) as goldens:
        expected = goldens[case]
    got = np.asarray(adm_center_crop(GOLDEN.synthetic_image(width, height, mode), size))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


def test_adm_center_crop_equals_hand_computed_pil_steps():
    image = GOLDEN.synthetic_image(600, 400, "RGB")
    # 400 >= 64: halve to 300x200, 150x100, 75x50 (50 < 64 stops); 32/50 scales 75x50 to 48x32; centre x offset 8.
    steps = image.resize((300, 200), Image.BOX).resize((150, 100), Image.BOX).resize((75, 50), Image.BOX)
    steps = np.asarray(steps.resize((48, 32), Image.BICUBIC))[:, 8:40]
    np.testing.assert_array_equal(np.asarray(adm_center_crop(image, 32)), steps)


def test_adm_center_crop_rounds_ties_to_even():
    # 38x32 -> short side 24: 38 * 0.75 = 28.5 rounds to 28 (Python round), so the crop starts at x = 2.
    ramp = np.tile(np.arange(38, dtype=np.uint8)[None, :, None] * 6, (32, 1, 3))
    expected = np.asarray(Image.fromarray(ramp).resize((28, 24), Image.BICUBIC))[:, 2:26]
    np.testing.assert_array_equal(np.asarray(adm_center_crop(Image.fromarray(ramp), 24)), expected)


def test_adm_center_crop_keeps_a_constant_image_constant():
    flat = Image.new("RGB", (517, 301), (13, 200, 77))
    out = np.asarray(adm_center_crop(flat, 32))
    assert out.shape == (32, 32, 3)
    assert (out == np.array([13, 200, 77], np.uint8)).all()


def test_adm_center_crop_refuses_size_zero():
    with pytest.raises(ValueError):
        adm_center_crop(Image.new("RGB", (8, 8)), 0)


def test_tensors_match_torchvision_to_tensor_and_normalize():
    tvf = pytest.importorskip("torchvision.transforms.functional")
    pixels = np.asarray(GOLDEN.synthetic_image(24, 24, "RGB"))
    x, raw = uint8_image_to_tensors(pixels)
    ref_raw = tvf.to_tensor(Image.fromarray(pixels))
    assert torch.equal(raw, ref_raw)
    assert torch.equal(x, tvf.normalize(ref_raw, [0.5] * 3, [0.5] * 3))  # bit-identical to the official transform


# --- folder layout ------------------------------------------------------------------------------------------------


def _save(path: Path, width: int = 40, height: int = 30, fmt: str | None = None, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def _truncated_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 3 // 5])
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two classes, 'b_dogs' (3 images, two of them damaged) and 'a_cats' (2 images, one nested in a sub-folder)."""
    root = tmp_path / "imagenet"
    _save(root / "a_cats" / "1.png", seed=1)
    _save(root / "a_cats" / "sub" / "2.JPEG", fmt="JPEG", seed=2)
    (root / "a_cats" / "notes.txt").write_text("not an image")
    _truncated_jpeg(root / "b_dogs" / "1.jpg")
    (root / "b_dogs" / "2.png").write_bytes(np.random.default_rng(3).bytes(500))
    _save(root / "b_dogs" / "3.png", seed=4)
    return root


def test_check_image_folder_counts_sorted_classes(folder):
    summary = check_image_folder(folder, resolution=16, expect_num_classes=2)
    assert summary.class_names == ["a_cats", "b_dogs"]
    assert summary.images_per_class == [2, 3]  # nested image found, .txt ignored
    assert (summary.num_classes, summary.num_images, summary.resolution) == (2, 5, 16)


@pytest.mark.parametrize("root", [None, ""])
def test_check_image_folder_without_root(root):
    with pytest.raises(DataError, match="data.imagenet_root"):
        check_image_folder(root, resolution=16)


def test_check_image_folder_missing_and_not_a_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        check_image_folder(tmp_path / "nowhere", resolution=16)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        check_image_folder(tmp_path / "file", resolution=16)


def test_check_image_folder_without_class_folders(tmp_path):
    _save(tmp_path / "loose.png")  # images directly under root are not a class layout
    with pytest.raises(DataError, match="no class sub-folders"):
        check_image_folder(tmp_path, resolution=16)


def test_check_image_folder_names_the_empty_class(folder):
    (folder / "c_birds").mkdir()
    (folder / "c_birds" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="c_birds") as err:
        check_image_folder(folder, resolution=16)
    assert isinstance(err.value, DecoBenchError) and "no images" in str(err.value)


def test_check_image_folder_wrong_class_count(folder):
    with pytest.raises(DataError, match=r"2 class folders.*num_classes = 1000"):
        check_image_folder(folder, resolution=16, expect_num_classes=1000)


# --- reading images -----------------------------------------------------------------------------------------------


def test_dataset_returns_adm_crop_in_both_ranges(folder):
    ds = ImageFolderDataset(folder, 16)
    x, label, raw = ds[0]
    expected = np.array(adm_center_crop(Image.open(folder / "a_cats" / "1.png").convert("RGB"), 16))
    assert label == 0 and len(ds) == 5
    assert torch.equal(raw, torch.from_numpy(expected).permute(2, 0, 1).float() / 255)
    torch.testing.assert_close(x, raw * 2 - 1, rtol=0, atol=1e-6)
    assert x.min() >= -1 and x.max() <= 1 and x.dtype == torch.float32


def test_corrupt_images_are_skipped_counted_and_replaced_within_the_class(folder):
    ds = ImageFolderDataset(folder, 16, on_bad_image="skip")
    good = ds[4]  # b_dogs/3.png
    x1, label1, _ = ds[2]  # b_dogs/1.jpg is truncated -> next valid of the same class
    assert label1 == 1 and torch.equal(x1, good[0])
    assert set(ds.skipped) == {folder / "b_dogs" / "1.jpg", folder / "b_dogs" / "2.png"}
    assert all("unreadable" in reason for reason in ds.skipped.values())
    x2, _, _ = ds[3]  # random bytes, already known bad: same replacement, no change in the count
    assert torch.equal(x2, good[0]) and len(ds.skipped) == 2


def test_verify_all_finds_every_corrupt_file_eagerly(folder):
    ds = ImageFolderDataset(folder, 16)
    skipped = ds.verify_all()
    assert sorted(p.name for p in skipped) == ["1.jpg", "2.png"]


@pytest.mark.parametrize("name", ["1.jpg", "2.png"])
def test_corrupt_image_is_fatal_when_asked_and_names_the_file(folder, name):
    ds = ImageFolderDataset(folder, 16, on_bad_image="fail")
    index = {"1.jpg": 2, "2.png": 3}[name]
    with pytest.raises(DataError, match=name):
        ds[index]
    with pytest.raises(DataError, match=name if name == "1.jpg" else "1.jpg"):
        ds.verify_all()  # stops at the first bad file in folder order


def test_a_class_with_only_corrupt_images_is_an_error(tmp_path):
    _save(tmp_path / "good" / "a.png")
    _truncated_jpeg(tmp_path / "bad" / "a.jpg")
    ds = ImageFolderDataset(tmp_path, 8)
    assert ds[1][1] == 1  # class 'good' (sorted after 'bad') still reads
    with pytest.raises(DataError, match=r"bad.*no usable image"):
        ds[0]
    with pytest.raises(DataError, match="no usable image"):
        ImageFolderDataset(tmp_path, 8).verify_all()


@pytest.fixture
def small_image_folder(tmp_path: Path) -> Path:
    _save(tmp_path / "k" / "0_small.png", width=20, height=12, seed=5)  # short side 12 < 16
    _save(tmp_path / "k" / "1_big.png", width=40, height=30, seed=6)
    return tmp_path


def test_small_image_is_upscaled_by_default_like_adm(small_image_folder):
    ds = ImageFolderDataset(small_image_folder, 16)
    _, _, raw = ds[0]
    expected = np.array(adm_center_crop(Image.open(small_image_folder / "k" / "0_small.png").convert("RGB"), 16))
    assert torch.equal(raw, torch.from_numpy(expected).permute(2, 0, 1).float() / 255)
    assert ds.skipped == {}


def test_small_image_skipped_under_skip_policy(small_image_folder):
    ds = ImageFolderDataset(small_image_folder, 16, min_size_policy="skip")
    assert torch.equal(ds[0][2], ds[1][2])
    assert list(ds.skipped) == [small_image_folder / "k" / "0_small.png"]
    assert "20x12" in ds.skipped[small_image_folder / "k" / "0_small.png"]


def test_small_image_fatal_under_fail_policy(small_image_folder):
    ds = ImageFolderDataset(small_image_folder, 16, min_size_policy="fail")
    with pytest.raises(DataError, match="0_small.png.*smaller"):
        ds[0]
    assert ds[1][1] == 0  # the big image is still fine


@pytest.mark.parametrize("kwargs", [dict(on_bad_image="ignore"), dict(min_size_policy="pad")])
def test_unknown_policy_is_refused(folder, kwargs):
    with pytest.raises(ValueError):
        ImageFolderDataset(folder, 16, **kwargs)


def test_index_out_of_range(folder):
    with pytest.raises(IndexError):
        ImageFolderDataset(folder, 16)[5]


# --- root resolution ----------------------------------------------------------------------------------------------


def test_resolve_root_prefers_the_parameter(monkeypatch, tmp_path):
    monkeypatch.setenv("DECO_IMAGENET", "/from/env")
    assert resolve_imagenet_root(str(tmp_path)) == tmp_path
    assert resolve_imagenet_root("") == Path("/from/env")
    assert resolve_imagenet_root(None) == Path("/from/env")


def test_resolve_root_without_parameter_or_env(monkeypatch):
    monkeypatch.delenv("DECO_IMAGENET", raising=False)
    with pytest.raises(DataError, match=r"data\.imagenet_root.*DECO_IMAGENET"):
        resolve_imagenet_root("")
