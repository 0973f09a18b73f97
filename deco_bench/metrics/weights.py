"""Feature-extractor weights, offline first: a manifest with checksums, explicit paths, opt-in download.

Where a file is looked up: the `path` argument if given; else `<cache_dir>/<filename>`, where cache_dir is the
argument, else $DECO_BENCH_WEIGHTS, else ~/.cache/deco-bench/weights. A missing file or a checksum mismatch raises
an error naming the file, its expected sha256 and where to obtain it. Nothing is downloaded unless
`allow_download=True`.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from deco_bench.io import ChecksumError, MissingFileError, atomic_path, sha256_file

ENV_CACHE_DIR = "DECO_BENCH_WEIGHTS"
DEFAULT_CACHE_DIR = Path("~/.cache/deco-bench/weights")
INCEPTION = "inception-v3-torch-fidelity"
INCEPTION_CLEANFID = "inception-v3-cleanfid"
DINOV2_VITL14 = "dinov2-vitl14"
DINOV2_VITB14 = "dinov2-vitb14"


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    filename: str
    sha256: str | None  # None: not pinned yet (the actual hash is still recorded in every result's identity)
    url: str
    size_bytes: int | None
    note: str


MANIFEST: dict[str, WeightsEntry] = {e.name: e for e in (
    # torch-fidelity's port of the TF 2015-12-05 Inception graph used by ADM; the filename carries the sha256 prefix
    # (torch.hub convention) and the full hash is the one published for this release asset.
    WeightsEntry(INCEPTION, "weights-inception-2015-12-05-6726825d.pth",
                 "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
                 "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth", None,
                 "FID/sFID/IS/precision/recall/KID (ADM protocol)"),
    # TorchScript file used by clean-fid's legacy_tensorflow mode (cross-check backend only). TorchScript is code,
    # so pin its sha256 here before trusting a copy; until then resolve() requires expected_sha256 from the caller.
    WeightsEntry(INCEPTION_CLEANFID, "inception-2015-12-05.pt", None,
                 "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
                 None, "clean-fid legacy_tensorflow cross-check"),
    WeightsEntry(DINOV2_VITL14, "dinov2_vitl14_pretrain.pth", None,
                 "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth", 1217586395,
                 "FD-DINOv2 (ViT-L/14)"),
    WeightsEntry(DINOV2_VITB14, "dinov2_vitb14_pretrain.pth", None,
                 "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth", None,
                 "FD-DINOv2 (ViT-B/14, the REPA encoder)"),
)}

_FROM_MANIFEST = "manifest"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    if override is not None:
        return Path(override).expanduser()
    return Path(os.environ.get(ENV_CACHE_DIR) or DEFAULT_CACHE_DIR).expanduser()


def _where(entry: WeightsEntry, folder: Path) -> str:
    return (f"Obtain it from {entry.url} and place it at {folder / entry.filename} (or pass its path explicitly, or "
            f"set ${ENV_CACHE_DIR} to the folder holding it); downloading is opt-in (allow_download=True).")


def verify(path: str | os.PathLike, expected_sha256: str | None, what: str, where: str = "") -> str:
    """Check that `path` exists and (when expected_sha256 is given) has that sha256; return its actual sha256."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what}: weights file {path} not found (expected sha256 {expected_sha256}). {where}")
    actual = sha256_file(path)
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise ChecksumError(f"{what}: weights file {path} has sha256 {actual}, expected {expected_sha256} "
                            f"(corrupt, truncated or a different file). {where}")
    return actual


def resolve(name: str, path: str | os.PathLike | None = None, *, cache_dir_override: str | os.PathLike | None = None,
            allow_download: bool = False, expected_sha256: str | None = _FROM_MANIFEST) -> Path:
    """Local, checksum-verified path of manifest entry `name`."""
    if name not in MANIFEST:
        raise KeyError(f"unknown weights '{name}'; known: {sorted(MANIFEST)}")
    entry = MANIFEST[name]
    expected = entry.sha256 if expected_sha256 == _FROM_MANIFEST else expected_sha256
    folder = cache_dir(cache_dir_override)
    target = Path(path).expanduser() if path is not None else folder / entry.filename
    if not target.is_file() and allow_download:
        _download(entry.url, target)
    verify(target, expected, f"{entry.name} ({entry.note})", _where(entry, folder))
    if entry.size_bytes is not None and expected is None and target.stat().st_size != entry.size_bytes:
        raise ChecksumError(f"{entry.name}: {target} is {target.stat().st_size} bytes, expected {entry.size_bytes}. "
                            + _where(entry, folder))
    return target


def _download(url: str, target: Path) -> None:
    with atomic_path(target) as tmp, urllib.request.urlopen(url) as response, open(tmp, "wb") as f:
        while block := response.read(1 << 20):
            f.write(block)
