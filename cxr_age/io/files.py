"""Folders and files written safely: a fresh folder per output, nothing overwritten, every file written
under a temporary name and renamed into place so that no reader sees half a file, and a lock that the
kernel releases however the process ends; and the SHA-256 that stores and bundles record of their files."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from cxr_age.errors import CxrAgeError

# Created exclusively in an `out` folder, so that of two commands started at once with the same `out`
# exactly one gets it; and the file a writer holds locked while it works in a folder.
CLAIM = ".cxr-age-run"
LOCK = ".cxr-age-lock"


def new_folder(out: str | Path | None, kind: str, root: Path) -> Path:
    """`out` if it is new or empty, else an error; without `out`, a fresh `<root>/<kind>-<time>[-N]`."""
    if out:
        folder = Path(out)
        taken = CxrAgeError(f"{folder} already exists and is not empty; choose another `out` (nothing is "
                            "overwritten)")
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise taken
        folder.mkdir(parents=True, exist_ok=True)
        try:
            (folder / CLAIM).open("x").close()
        except FileExistsError:
            raise taken from None
        return folder
    return claim_folder(f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}", root)[0]


def claim_folder(base: str, root: Path, reusable: Callable[[Path], bool] | None = None) -> tuple[Path, bool]:
    """The first of `<root>/<base>`, `<root>/<base>-2`, ... that is `reusable` (returned as is) or does not
    exist yet (created); True when reused."""
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        folder = root / (base if attempt == 1 else f"{base}-{attempt}")
        if reusable is not None and reusable(folder):
            return folder, True
        try:
            folder.mkdir()
            return folder, False
        except FileExistsError:
            continue
    raise CxrAgeError(f"cannot create a fresh folder under {root}")


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` while the block runs. The kernel releases it however the process
    ends (SIGKILL included), so interrupted work can be resumed, but never by two processes at once."""
    with open(folder / LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CxrAgeError(f"{folder} is in use by another running process; wait for it to end or choose "
                              "another `out`") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def claim_file(folder: Path, stem: str, suffix: str) -> Path:
    """A new, empty file `<stem><suffix>` in `folder`, or `<stem>-2<suffix>`, ... if that name is taken:
    created exclusively, so an existing file is never overwritten, even by a run started at the same time."""
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 10000):
        path = folder / (f"{stem}{suffix}" if attempt == 1 else f"{stem}-{attempt}{suffix}")
        try:
            path.open("x").close()
            return path
        except FileExistsError:
            continue
    raise CxrAgeError(f"cannot find a free name for {stem}{suffix} in {folder}")


def write_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(temporary_path)` in the target's folder, then rename the result onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_text(text: str, path: Path) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def without_nan(value: Any) -> Any:
    """`value` as strict JSON allows: a NaN or infinite number (not JSON) becomes None (null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nan(item) for item in value]
    return value


def write_json(data: dict[str, Any], path: Path) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, read 16 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()
