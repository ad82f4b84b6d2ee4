"""Read a dataset's metadata table into one normalised table, whichever dataset it comes from.

The table's layout is detected from its columns (or named: `nih`, `chexpert`, `mimic`, `padchest`,
`dicom-headers`, `covid`, `csv`) and read by that dataset's adapter (`cxr_age.io.datasets`). Normalised columns:
`image` (path relative to the image folder), `patient_id`, `age` (float years), `sex`, `view`, `findings`
(`|`-separated labels), `group` (0..8, or -1 above 90), `row` (the line of the source file, for messages),
`dataset` and `excluded` (blank, or the key of the reason the row is left out, from
`cxr_age.io.datasets.REASONS`). Ages over 120 are data errors, not old patients: they are excluded as
implausible in every dataset, apart from the paper's filter of ages over 90.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io import datasets
from cxr_age.io.ages import group_index
from cxr_age.io.datasets.base import read_text_table

COLUMNS = ("image", "patient_id", "age", "sex", "view", "findings", "group", "row", "dataset", "excluded")
VIEWS = ("PA", "AP", "all")
MAX_PLAUSIBLE_AGE = 120.0


@dataclass
class Table:
    """A normalised metadata table, the dataset it was read as (and whether that was detected from its
    columns), and what reading it found worth saying."""

    frame: pd.DataFrame
    source: Path
    notes: list[str]
    dataset: str = "csv"
    detected: bool = True
    warnings: list[str] = field(default_factory=list)


def _listing(rows: pd.DataFrame, column: str, limit: int = 5) -> str:
    shown = ", ".join(f"row {r} ({v!r})" for r, v in zip(rows["row"][:limit], rows[column][:limit]))
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def read_columns(path: str | Path) -> list[str]:
    """The header of a table, read without its rows (for naming the dataset before reading it)."""
    path = Path(path)
    if not path.is_file():
        raise CxrAgeError(f"CSV file not found: {path}")
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0, encoding="utf-8").columns]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError, ValueError):
        return []


def _check_rows(frame: pd.DataFrame, path: Path) -> None:
    no_name = frame[frame["image"] == ""]
    if len(no_name):
        raise CxrAgeError(f"{path}: {len(no_name)} rows have no image name: {_listing(no_name, 'image')}")
    blank = frame[(frame["patient_id"] == "") & (frame["excluded"] == "")]
    if len(blank):
        raise CxrAgeError(f"{path}: {len(blank)} rows have no patient id: {_listing(blank, 'image')}")
    duplicated = frame[frame["image"].duplicated(keep="first")]
    if len(duplicated):
        raise CxrAgeError(f"{path}: {len(duplicated)} images are listed twice: {_listing(duplicated, 'image')}")


def read_table(path: str | Path, dataset: str | None = None, patients: str | None = None) -> Table:
    """Read a metadata table as `dataset` (detected from its columns when None) into the normalised table.

    Args:
        path: the table, plain or gzipped CSV.
        dataset: one of `cxr_age.io.datasets.DATASET_NAMES`, or None to detect it.
        patients: MIMIC-IV's `patients.csv` for a MIMIC-CXR table (default: the one beside it).

    Ages that do not parse (in tables that must have one), images without a name, kept rows without a
    patient id and images listed twice are one-line errors naming the rows.
    """
    path = Path(path)
    raw = read_text_table(path)
    if raw.empty:
        raise CxrAgeError(f"{path} has a header but no rows")
    adapter = datasets.get(dataset) if dataset else datasets.detect(list(raw.columns))
    normalised = adapter.normalise(raw, path, patients)
    frame = normalised.frame.reset_index(drop=True)
    frame["row"] = range(2, len(frame) + 2)
    frame["dataset"] = adapter.name
    frame["patient_id"] = frame["patient_id"].astype(str)
    _check_rows(frame, path)
    frame.loc[frame["age"] > MAX_PLAUSIBLE_AGE, "excluded"] = "implausible_age"
    frame["group"] = group_index(frame["age"])
    notes = list(normalised.notes)
    kept = frame[frame["excluded"] == ""]
    if len(kept) > 1 and kept["patient_id"].nunique() == len(kept) and not normalised.warnings:
        notes.append("every image has its own patient id: if anyone has two images, the table does not say so")
    return Table(frame[list(COLUMNS)], path, notes, adapter.name, dataset is None, list(normalised.warnings))
