"""A folder run's predictions written as they come, so that a run of 50,000 studies that is interrupted or
killed keeps every batch it finished, and a rerun with the same settings resumes where it stopped.

`FILE.csv` gets each batch's rows appended (and flushed to disk) as soon as they are predicted;
`FILE_skipped.csv` the files skipped with their reasons; `FILE_settings.json`, written first, the settings
the predictions were made with (runs, coverage, reading options). A rerun naming the same `FILE.csv` reads
which files it holds and predicts only the others; a file skipped before is tried again. A `FILE.csv` that
this command did not write, or wrote with other settings, is never touched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.files import write_json

SKIPPED_COLUMNS = ["file", "reason"]


def skipped_file(csv: Path) -> Path:
    return csv.with_name(f"{csv.stem}_skipped.csv")


def settings_file(csv: Path) -> Path:
    return csv.with_name(f"{csv.stem}_settings.json")


def _cut_partial_line(path: Path) -> None:
    """Drop a last line left half-written by a killed run (everything after the last newline)."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(end)


def _append(path: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    header = not path.exists() or path.stat().st_size == 0
    with open(path, "a", encoding="utf-8", newline="") as handle:
        frame.reindex(columns=columns).to_csv(handle, header=header, index=False)
        handle.flush()
        os.fsync(handle.fileno())


class PredictionLog:
    """The predictions CSV of one folder run, and the files it already holds (`done`)."""

    def __init__(self, csv: Path, done: frozenset[str], columns: list[str] | None) -> None:
        self.csv = csv
        self.done = done
        self.columns = columns

    @classmethod
    def open(cls, csv: Path, settings: dict) -> PredictionLog:
        """A new log at `csv`, or the log an interrupted run with the same `settings` left there."""
        settings = json.loads(json.dumps(settings))  # as it reads back from the file
        saved_file = settings_file(csv)
        if not csv.exists():
            for path in (skipped_file(csv), saved_file):
                if path.exists():
                    raise CxrAgeError(f"{path} already exists; choose another `csv` file (nothing is overwritten)")
            if not csv.parent.is_dir():
                raise CxrAgeError(f"folder of `csv` not found: {csv.parent}")
            write_json(settings, saved_file)
            return cls(csv, frozenset(), None)
        if not saved_file.is_file():
            raise CxrAgeError(f"{csv} already exists and was not written by cxr-age-predict (no {saved_file.name}); "
                              "choose another `csv` file (nothing is overwritten)")
        saved = json.loads(saved_file.read_text(encoding="utf-8"))
        changed = sorted(key for key in set(saved) | set(settings) if saved.get(key) != settings.get(key))
        if changed:
            raise CxrAgeError(f"{csv} holds predictions made with other settings ({', '.join(changed)}); rerun with "
                              "the same ones to resume, or choose another `csv` file")
        _cut_partial_line(csv)
        existing = pd.read_csv(csv, dtype={"file": str}, keep_default_na=False) if csv.stat().st_size else None
        skipped_file(csv).unlink(missing_ok=True)  # skipped files are tried again and listed anew
        if existing is None:
            return cls(csv, frozenset(), None)
        return cls(csv, frozenset(existing["file"]), list(existing.columns))

    def append(self, rows: pd.DataFrame, skipped: list[tuple[str, str]]) -> None:
        """Add one batch's predictions and skips to the files, on disk before this returns."""
        if len(rows):
            self.columns = self.columns or list(rows.columns)
            _append(self.csv, rows, self.columns)
        if skipped:
            _append(skipped_file(self.csv), pd.DataFrame(skipped, columns=SKIPPED_COLUMNS), SKIPPED_COLUMNS)
