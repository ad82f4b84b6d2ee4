"""Run directories and the files written into them: a fresh folder per run, nothing overwritten, every
file written under a temporary name and renamed into place so no reader sees half a file."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from cxr_age.config import load_experiment
from cxr_age.errors import CxrAgeError
from cxr_age.run_files import CONFIG, METRICS, MODEL

RUNS_ROOT = Path("runs")
# Created exclusively in an `--out` folder, so that of two commands started at once with the same `--out`
# exactly one gets it; and the file a training run holds locked while it runs.
CLAIM = ".cxr-age-run"
LOCK = ".cxr-age-lock"


def new_run_dir(out: str | None, kind: str, root: Path = RUNS_ROOT) -> Path:
    """`out` if it is new or empty, else an error; without `out`, a fresh `<root>/<kind>-<time>[-N]`."""
    if out:
        folder = Path(out)
        taken = CxrAgeError(f"{folder} already exists and is not empty; choose another --out (nothing is overwritten)")
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise taken
        folder.mkdir(parents=True, exist_ok=True)
        try:
            (folder / CLAIM).open("x").close()
        except FileExistsError:
            raise taken from None
        return folder
    return _claim(f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}", root=root)[0]


def _claim(base: str, settings: str | None = None, root: Path = RUNS_ROOT) -> tuple[Path, bool]:
    """The first of `<root>/<base>`, `<root>/<base>-2`, ... that is an interrupted run of `settings`
    (reused) or does not exist yet (created); True when reused."""
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        folder = root / (base if attempt == 1 else f"{base}-{attempt}")
        if settings is not None and _resumable(folder, settings):
            return folder, True
        try:
            folder.mkdir()
            return folder, False
        except FileExistsError:
            continue
    raise CxrAgeError(f"cannot create a fresh run folder under {root}")


def _resumable(folder: Path, settings: str) -> bool:
    """An interrupted run of the same settings: same saved config, no final metrics yet."""
    saved = folder / CONFIG
    return saved.is_file() and saved.read_text() == settings and not (folder / METRICS).exists()


def training_run_dir(out: str | None, stem: str, settings: str) -> tuple[Path, bool]:
    """The folder of a training run and whether it resumes an interrupted one. With `out`: a new or empty
    folder, or an interrupted run of the same settings. Without: `runs/<stem>-<hash of settings>[-N]`, so
    that the same command finds its own interrupted run again; a finished run is never reused."""
    if out:
        folder = Path(out)
        if _resumable(folder, settings):
            return folder, True
        return new_run_dir(out, stem), False
    return _claim(f"{stem}-{hashlib.sha1(settings.encode()).hexdigest()[:8]}", settings)


@contextlib.contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` while the block runs. The kernel releases it however the process
    ends (SIGKILL included), so an interrupted run can be resumed, but never by two processes at once."""
    with open(folder / LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CxrAgeError(f"{folder} is in use by another running process; wait for it to end or choose "
                              "another --out") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def latest_run(task: str, root: Path = RUNS_ROOT) -> Path | None:
    """The most recently saved model among the finished runs of `task` under `root`, or None."""
    candidates = []
    for config in root.glob("*/config.toml"):
        model = config.parent / MODEL
        if model.is_file() and (config.parent / METRICS).is_file():
            try:
                if load_experiment(config).train.task == task:
                    candidates.append((model.stat().st_mtime, config.parent))
            except CxrAgeError:
                continue
    return max(candidates)[1] if candidates else None


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


def write_json(data: dict[str, Any], path: Path) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))
