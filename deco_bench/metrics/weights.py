"""Feature-extractor weights and reference batches, offline only: a manifest with checksums, explicit paths,
and one check of every file a parameter set names (run by the first stage, `prepare`).

Where a file is looked up (resolve): the `path` argument if given; else `<cache_dir>/<filename>`, where cache_dir is
the argument, else $DECO_BENCH_WEIGHTS, else ~/.cache/deco-bench/weights. A missing file or a checksum mismatch
raises an error naming the file, its expected sha256 (or that none is published) and where to obtain it. Nothing is
ever downloaded. The profiles in experiments/ name these files as `weights/<filename>`, with
exactly the manifest's file names.

The whole-parameter-set check: `config.required_files(params)` lists every weights/reference file the parameters name,
`check_files(files)` checks each (presence, then sha256 against the manifest) and reports every problem, and
`verify_all(files)` raises one error with one line per unusable file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from deco_bench.io import ChecksumError, DecoBenchError, MissingFileError, sha256_file


ENV_CACHE_DIR = "DECO_BENCH_WEIGHTS"
DEFAULT_CACHE_DIR = Path("~/.cache/deco-bench/weights")
INCEPTION = "inception-v3-torch-fidelity"
INCEPTION_CLEANFID = "inception-v3-cleanfid"
DINOV2_VITL14 = "dinov2-vitl14"
DINOV2_VITB14 = "dinov2-vitb14"
ADM_REF_256 = "adm-reference-imagenet256"
ADM_REF_512 = "adm-reference-imagenet512"

_ADM_NO_HASH = ("OpenAI publishes no sha256 for the ADM reference batches, so only its presence is checked; the "
                "prepare stage records the sha256 of the copy it found in data/info.json")


_DECO_NO_HASH = ("the DeCo authors publish no sha256 for their checkpoints, so only its presence is checked; the "
                 "sample stage records the sha256 of the copy it loaded beside every number (pin it with "
                 "released.<row>.checkpoint_sha256)")


class UnpinnedWeightsError(ChecksumError):
    """A file that executes code when loaded (TorchScript) has no sha256 to check it against: it is not loaded."""


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    filename: str
    sha256: str | None  # None: no published hash (no_hash_reason says so in every error)
    url: str
    size_bytes: int | None
    note: str
    no_hash_reason: str = ""  # why sha256 is None; required when it is
    executes_code: bool = False  # TorchScript: never loaded without a sha256 (manifest's or the caller's)
    same_bytes_as: str = ""  # another published name of the very same file (same sha256), said in the errors


MANIFEST: dict[str, WeightsEntry] = {e.name: e for e in (
    # torch-fidelity's state dict of the TF 2015-12-05 FID Inception, the file inception.py loads (through
    # torch-fidelity's FeatureExtractorInceptionV3, whose own download URL this is). pytorch-fid publishes the same
    # bytes as pt_inception-2015-12-05-6726825d.pth (its sha256, 6726825d..., is the one third-party projects record
    # for both names; both names carry its first 8 hex digits, torch.hub's convention), and the state-dict keys
    # of the two projects' modules are identical, so a copy under either name passes the check below.
    WeightsEntry(INCEPTION, "weights-inception-2015-12-05-6726825d.pth",
                 "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
                 "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth", None,
                 "FID/sFID/IS/precision/recall/KID (ADM protocol)",
                 same_bytes_as="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (https://github.com/mseitzer/"
                               "pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth)"),
    # TorchScript file used by clean-fid's legacy_tensorflow mode (cross-check backend only). TorchScript is code,
    # so it is loaded only when its sha256 is this one. NVIDIA's page gives no hash; this is the value that
    # third-party code pins for exactly this URL (crowsonkb/k-diffusion, k_diffusion/evaluation.py, which downloads
    # it for clean-fid's InceptionV3W), and other public projects record the same value for the file.
    WeightsEntry(INCEPTION_CLEANFID, "inception-2015-12-05.pt",
                 "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4",
                 "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
                 None, "clean-fid legacy_tensorflow cross-check", executes_code=True),
    WeightsEntry(DINOV2_VITL14, "dinov2_vitl14_pretrain.pth",
                 "d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428",
                 "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth", 1217586395,
                 "FD-DINOv2 (ViT-L/14)"),
    WeightsEntry(DINOV2_VITB14, "dinov2_vitb14_pretrain.pth",
                 "0b8b82f85de91b424aded121c7e1dcc2b7bc6d0adeea651bf73a13307fad8c73",
                 "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth", None,
                 "DINOv2 ViT-B/14: the REPA encoder, and FD-DINOv2 (ViT-B/14)"),
    # ADM's reference batches (guided-diffusion evaluations/README.md): the evaluation reference of the paper tables.
    WeightsEntry(ADM_REF_256, "VIRTUAL_imagenet256_labeled.npz", None,
                 "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/"
                 "VIRTUAL_imagenet256_labeled.npz", None, "ADM reference batch, ImageNet 256x256",
                 no_hash_reason=_ADM_NO_HASH),
    WeightsEntry(ADM_REF_512, "VIRTUAL_imagenet512.npz", None,
                 "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/512/"
                 "VIRTUAL_imagenet512.npz", None, "ADM reference batch, ImageNet 512x512",
                 no_hash_reason=_ADM_NO_HASH),
    # DeCo's released checkpoints (the official README's table; docs/paper.md §1.4). Lightning files holding the raw
    # (denoiser.*) and EMA (ema_denoiser.*) weights; read weights-only, never unpickled as code.
    *(WeightsEntry(f"deco-xl-{data}-epoch{epoch}", f"{data}_epoch{epoch}.ckpt", None,
                   f"https://huggingface.co/zehongma/DeCo (file {data}_epoch{epoch}.ckpt)", None,
                   f"DeCo-XL/16 released checkpoint, {data.replace('imagenet', 'ImageNet ')}, {epoch} epochs",
                   no_hash_reason=_DECO_NO_HASH)
      for data, epoch in (("imagenet256", 320), ("imagenet256", 600), ("imagenet256", 800), ("imagenet512", 340))),
)}

_FROM_MANIFEST = "manifest"


def by_filename(filename: str) -> WeightsEntry | None:
    """The manifest entry whose file name is `filename` (exactly), or None."""
    return next((e for e in MANIFEST.values() if e.filename == filename), None)


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    if override is not None:
        return Path(override).expanduser()
    return Path(os.environ.get(ENV_CACHE_DIR) or DEFAULT_CACHE_DIR).expanduser()


def _expectation(entry: WeightsEntry | None, expected_sha256: str | None) -> str:
    if expected_sha256 is not None:
        return f"expected sha256 {expected_sha256}"
    if entry is not None and entry.no_hash_reason:
        return f"no published sha256: {entry.no_hash_reason}"
    return "no sha256 given, presence only"


def _get_it(entry: WeightsEntry, place: Path) -> str:
    alias = f" ({entry.same_bytes_as} is the same file: renaming it is fine)" if entry.same_bytes_as else ""
    return f"Get it from {entry.url} and place it at {place}{alias}"


def _where(entry: WeightsEntry, folder: Path) -> str:
    return (_get_it(entry, folder / entry.filename) + f"; or pass its path explicitly, or set ${ENV_CACHE_DIR} to "
            "the folder holding it.")


def verify(path: str | os.PathLike, expected_sha256: str | None, what: str, where: str = "",
           entry: WeightsEntry | None = None) -> str:
    """Check that `path` exists and (when expected_sha256 is given) has that sha256; return its actual sha256."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what}: weights file {path} not found ({_expectation(entry, expected_sha256)}). "
                               f"{where}")
    actual = sha256_file(path)
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise ChecksumError(f"{what}: weights file {path} has sha256 {actual}, expected {expected_sha256} "
                            f"(corrupt, truncated or a different file). {where}")
    return actual


def resolve(name: str, path: str | os.PathLike | None = None, *, cache_dir_override: str | os.PathLike | None = None,
            expected_sha256: str | None = _FROM_MANIFEST) -> Path:
    """Local, checksum-verified path of manifest entry `name`.

    expected_sha256: "manifest" (default) checks the manifest's hash; a hash checks that one; None checks nothing.
    A file that executes code (TorchScript) is refused whenever there is no hash to check it against.
    """
    if name not in MANIFEST:
        raise KeyError(f"unknown weights '{name}'; known: {sorted(MANIFEST)}")
    entry = MANIFEST[name]
    from_manifest = expected_sha256 == _FROM_MANIFEST
    expected = entry.sha256 if from_manifest else expected_sha256
    folder = cache_dir(cache_dir_override)
    target = Path(path).expanduser() if path is not None else folder / entry.filename
    what = f"{entry.name} ({entry.note})"
    if not target.is_file():
        verify(target, expected, what, _where(entry, folder), entry)  # raises MissingFileError
    if entry.executes_code and expected is None:
        raise UnpinnedWeightsError(
            f"{what}: refusing to load {target} unchecked: it is TorchScript (loading it runs code) and there is no "
            f"sha256 to check it against. {entry.no_hash_reason}.")
    if entry.size_bytes is not None and (from_manifest or expected is None) \
            and target.stat().st_size != entry.size_bytes:  # cheap, and before hashing a multi-GB file
        raise ChecksumError(f"{entry.name}: {target} is {target.stat().st_size} bytes, expected {entry.size_bytes}. "
                            + _where(entry, folder))
    verify(target, expected, what, _where(entry, folder), entry)
    return target


# ------------------------------------------------------------------------------ every file a parameter set names


@dataclass(frozen=True)
class RequiredFile:
    """A file named by a parameter: a manifest entry (sha256 checked when published) or a file of the user's own
    (entry None: presence only; `what` says what it is and where it comes from)."""
    param: str  # the dotted parameter naming it, e.g. "evaluate.inception_weights", "models.deco.init_from"
    path: Path
    entry: WeightsEntry | None
    what: str = ""


@dataclass(frozen=True)
class FileCheck:
    file: RequiredFile
    sha256: str | None  # actual sha256 (manifest files that exist); None for files of the user's own or missing
    problem: DecoBenchError | None  # None: usable


def check_file(f: RequiredFile, *, hasher: Callable[[Path], str] = sha256_file) -> FileCheck:
    """Presence, then (manifest entries) the sha256; the problem, if any, is a one-line error naming the parameter,
    the file, the expected sha256 (or that none is published) and where to get it."""
    entry = f.entry
    if entry is None:
        if not f.path.is_file():
            return FileCheck(f, None, MissingFileError(
                f"{f.param}: {f.path} not found ({f.what}; no sha256 to check, presence only)."))
        return FileCheck(f, None, None)
    if not f.path.is_file():
        return FileCheck(f, None, MissingFileError(
            f"{f.param}: {f.path} not found ({entry.note}; {_expectation(entry, entry.sha256)}). "
            + _get_it(entry, f.path) + "."))
    actual = hasher(f.path)
    if entry.sha256 is not None and actual != entry.sha256.lower():
        return FileCheck(f, actual, ChecksumError(
            f"{f.param}: {f.path} has sha256 {actual}, expected {entry.sha256} ({entry.note}; corrupt, truncated "
            "or a different file). " + _get_it(entry, f.path) + "."))
    return FileCheck(f, actual, None)


def check_files(files: Iterable[RequiredFile], *, hasher: Callable[[Path], str] = sha256_file) -> list[FileCheck]:
    """check_file for each file; every file is checked, whatever the others give."""
    return [check_file(f, hasher=hasher) for f in files]


def verify_all(files: Iterable[RequiredFile], *, hasher: Callable[[Path], str] = sha256_file) -> list[FileCheck]:
    """Check every file; return the checks when all are usable, else raise one error with one line per unusable
    file: MissingFileError when every problem is a missing file, ChecksumError when every one is a wrong sha256,
    DecoBenchError for a mix (its `.problems` lists the individual errors)."""
    checks = check_files(files, hasher=hasher)
    problems = [c.problem for c in checks if c.problem is not None]
    if not problems:
        return checks
    kinds = {type(p) for p in problems}
    cls = kinds.pop() if len(kinds) == 1 else DecoBenchError
    err = cls("\n".join(str(p) for p in problems))
    err.problems = problems
    raise err
