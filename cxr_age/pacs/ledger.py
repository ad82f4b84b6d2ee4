"""The pull's ledger: a CSV with one row per instance and model (SOP Instance UID, the model's SHA-256,
what became of it, its age and its report's UID; never a patient attribute), appended and flushed as each
batch finishes, so that a run stopped at any point resumes where it stopped and a second run does no work
twice and stores no report twice. A later row for the same instance and model supersedes an earlier one."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd

from cxr_age.errors import CxrAgeError

COLUMNS = ("sop_instance_uid", "study_instance_uid", "series_instance_uid", "model_sha256", "status", "reason",
           "predicted_age", "interval_low", "interval_high", "report_uid", "report_stored")


class Ledger:
    """The rows of one model in a ledger file (created with its header if absent).

    Examples:
        >>> ledger = Ledger(Path("pacs.csv"), algorithm.sha256)
        >>> ledger.done("1.2.3", want_report=True)
        False
    """

    def __init__(self, path: Path, model_sha256: str) -> None:
        self.path, self.model = Path(path), model_sha256
        self.rows: dict[str, dict] = {}
        if self.path.is_file() and self.path.stat().st_size:
            self._read()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(COLUMNS)

    def _read(self) -> None:
        try:
            frame = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        except (ValueError, UnicodeDecodeError) as err:
            raise CxrAgeError(f"{self.path} cannot be read as a cxr-age-pacs ledger: {err}") from None
        if tuple(frame.columns) != COLUMNS:
            raise CxrAgeError(f"{self.path} is not a cxr-age-pacs ledger (its columns differ); name a new file, "
                              "nothing in this one is changed")
        for row in frame[frame["model_sha256"] == self.model].to_dict("records"):
            self.rows[row["sop_instance_uid"]] = row

    def done(self, sop: str, want_report: bool) -> bool:
        """Whether this model already finished with the instance: refused it, or predicted it (and stored its
        report, when one is wanted now)."""
        row = self.rows.get(sop)
        if row is None:
            return False
        return row["status"] != "predicted" or not want_report or row["report_stored"] == "true"

    def record(self, rows: list[dict]) -> None:
        """Append rows (missing columns blank) and flush them to disk before returning."""
        with open(self.path, "a", newline="") as handle:
            writer = csv.writer(handle)
            for row in rows:
                full = {**row, "model_sha256": self.model}
                full = {column: _text(full.get(column, "")) for column in COLUMNS}
                writer.writerow([full[column] for column in COLUMNS])
                self.rows[full["sop_instance_uid"]] = full
            handle.flush()
            os.fsync(handle.fileno())


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
