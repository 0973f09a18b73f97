"""File I/O that never leaves a partial output behind and never executes code from a file.

Every writer goes through `atomic_path`: write to a temporary file in the same folder, flush and fsync, then
rename over the destination. A process killed at any moment leaves either the old file or the new one, never a
truncated one that a later stage would accept.

Every reader of a file a user may have downloaded goes through `safe_torch_load` (``weights_only=True`` plus an
explicit allow-list) or `load_npz` (``allow_pickle=False``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import hashlib
import json
import os
import pathlib
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch


class DecoBenchError(RuntimeError):
    """Base class for errors deco-bench reports to users (clear message, no deep traceback needed)."""


class CorruptFileError(DecoBenchError):
    """A file exists but cannot be read: truncated, not the expected format, or damaged."""


class UnsafeCheckpointError(DecoBenchError):
    """A checkpoint would need arbitrary code to unpickle; it is refused, never executed."""


class ChecksumError(DecoBenchError):
    """A weights file does not have the expected sha256."""


class MissingFileError(DecoBenchError, FileNotFoundError):
    """A required input file is missing."""


class DiskSpaceError(DecoBenchError):
    """Not enough free disk space for what a stage is about to write."""


# errno values that mean "the disk (or the user's quota) is full": a write failing with one of them is a
# DiskSpaceError naming the file, whichever writer it happened in.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
TEMP_SUFFIX = ".tmp"  # every temporary file atomic_path makes is ".<name>.<random><suffix>.tmp" in the target's folder


def _disk_full(path: Path, e: OSError) -> DiskSpaceError:
    return DiskSpaceError(f"{path}: the disk is full ({e.strerror or e}); nothing was replaced (the previous file, "
                          f"if any, is intact and no partial file is left): free some space and run the same command "
                          f"again")


def disk_full_cause(e: BaseException) -> OSError | None:
    """The disk-full OSError behind `e` (itself, or what it was raised from or while handling), if there is one."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return e
        e = e.__cause__ or e.__context__
    return None


def open_for_write(path: str | os.PathLike, mode: str = "wb"):
    """The one place file contents are written from (tests replace it to simulate a full disk)."""
    return open(path, mode)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success fsync it and rename it over `path`.

    A full disk at any point (creating, writing, syncing, renaming) raises DiskSpaceError and removes the temporary
    file; a kill leaves it behind, which `remove_temporaries` (called by every stage at its start) deletes.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + TEMP_SUFFIX, dir=path.parent)
        os.close(fd)
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise _disk_full(path, e) from e
        raise
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except Exception as e:  # noqa: BLE001 - a writer may wrap the OSError (torch.save: RuntimeError)
        full = disk_full_cause(e)
        if full is not None:
            raise _disk_full(path, full) from e
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def is_temporary(name: str, of: str | None = None) -> bool:
    """Whether `name` is a temporary file of atomic_path (of the file named `of`, when given)."""
    prefix = f".{of}." if of is not None else "."
    return name.startswith(prefix) and name.endswith(TEMP_SUFFIX) and len(name) > len(prefix) + len(TEMP_SUFFIX)


def remove_temporaries(folder: str | os.PathLike, names: Iterable[str] | None = None) -> list[Path]:
    """Delete what killed writers left in `folder`: the temporary files of `names` (every one when None).

    Call it only where no other process is writing those files (a stage does, at its start, under its lock).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = None if names is None else list(names)
    removed = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and (is_temporary(p.name) if wanted is None else any(is_temporary(p.name, n) for n in wanted)):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        with open_for_write(tmp, "w") as f:
            f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def numbers_only(obj: Any) -> dict[str, int | float]:
    """`obj` as a DVC metrics file's content: a flat mapping of names to finite numbers (numpy scalars become
    Python ones). Anything else -- text, null, a bool, a list, a nested mapping, NaN or infinity -- is a ValueError
    naming the key: descriptive detail belongs in an ordinary output, and a value that does not exist is left out."""
    if not isinstance(obj, dict):
        raise ValueError(f"a metrics file holds a mapping of numbers, not {type(obj).__name__}")
    out: dict[str, int | float] = {}
    for key, v in obj.items():
        if isinstance(v, (np.integer, np.floating)):
            v = v.item()
        if not isinstance(key, str) or isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise ValueError(f"metrics key {key!r}: {v!r} is not a finite number (metrics files hold numbers only)")
        out[key] = v
    return out


def atomic_write_metrics(path: str | os.PathLike, obj: Any) -> None:
    """A DVC metrics file: numbers_only(obj), written atomically."""
    atomic_write_json(path, numbers_only(obj))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a.b.c": leaf}; lists and other values are leaves (metrics files, `dvc exp show` rows)."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for k, v in obj.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to `path` atomically, byte-deterministically.

    Given a file name, torch.save names the zip's records after it, so the random temporary name would end up
    inside the file and two identical saves would differ. Given an open file, the record names are fixed.
    """
    with atomic_path(path) as tmp:
        with open_for_write(tmp, "wb") as f:
            torch.save(obj, f)


def atomic_savez(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """np.savez to `path` atomically (the name is kept exactly; numpy would otherwise append .npz)."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open_for_write(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_npz(path: str | os.PathLike, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read an .npz without pickle; a missing, truncated or corrupt file raises a named error."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files) if keys is None else list(keys)
            missing = [k for k in names if k not in z.files]
            if missing:
                raise CorruptFileError(f"{path}: missing array(s) {missing}; it holds {sorted(z.files)}")
            return {k: z[k] for k in names}
    except DecoBenchError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a damaged or foreign file makes numpy or zipfile raise
        raise CorruptFileError(f"{path}: not a readable .npz file (truncated or corrupt?): "
                               f"{type(e).__name__}: {_one_line(e)}") from e


# Globals a plain checkpoint (ours, or an official Lightning .ckpt) may legitimately reference. Everything else,
# in particular any callable, is refused by torch's weights-only unpickler.
def _safe_globals() -> list[Any]:
    allowed: list[Any] = [collections.OrderedDict, collections.defaultdict, pathlib.PosixPath, pathlib.PurePosixPath]
    with contextlib.suppress(Exception):
        allowed.append(argparse.Namespace)
    return allowed


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    extra_safe_globals: Iterable[Any] = ()) -> Any:
    """torch.load with weights_only=True and an explicit allow-list; never runs code from the file."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals([*_safe_globals(), *extra_safe_globals]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Unsupported global" in msg or "not an allowed global" in msg or "weights_only" in msg.lower():
            lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
            named = [ln for ln in lines if "GLOBAL" in ln or "global" in ln]
            first = (named or lines or [msg])[0]
            raise UnsafeCheckpointError(
                f"{path}: refused to load: unpickling it would need code that is not on deco-bench's allow-list "
                f"({first}). The file was not executed. Only load checkpoints you trust; if this is an official "
                f"DeCo checkpoint, open an issue with the name of the global."
            ) from e
        raise CorruptFileError(f"{path}: not a readable checkpoint (truncated or corrupt?): {_one_line(msg)}") from e
    except DecoBenchError:
        raise
    except Exception as e:  # noqa: BLE001 - a foreign or damaged file makes the unpickler raise almost anything
        raise CorruptFileError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                               f"{type(e).__name__}: {_one_line(e)}") from e


def _one_line(e: object, limit: int = 200) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + "..."


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


_HASH_CACHE = Path(".cache") / "sha256.json"


def sha256_cached(path: str | os.PathLike, cache: str | os.PathLike = _HASH_CACHE) -> str:
    """sha256 of a (possibly multi-GB) file, remembered per (real path, size, mtime) so a re-run does not re-read it."""
    path = Path(path)
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache = Path(cache)
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if isinstance(known.get(key), str):
        return known[key]
    digest = sha256_file(path)
    known = {k: v for k, v in known.items() if not k.startswith(f"{path.resolve()}|")}
    known[key] = digest
    with contextlib.suppress(OSError, DiskSpaceError):  # read-only or full: the hash is returned, not remembered
        atomic_write_json(cache, known)
    return digest


def check_free_space(folder: str | os.PathLike, need_bytes: int, what: str) -> None:
    """Stop before starting when `folder`'s disk has less than `need_bytes` free."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need_bytes > free:
        raise DiskSpaceError(
            f"{what} needs about {need_bytes / 2**30:.2f} GiB in {folder}, but only {free / 2**30:.2f} GiB is free"
        )
