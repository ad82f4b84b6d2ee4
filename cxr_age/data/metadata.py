"""Read NIH ChestX-ray14 metadata tables (2017 and v2020 releases) or a generic CSV into one normalised table.

Normalised columns, whatever the source: `image` (name or path relative to the image folder), `patient_id`,
`age` (float years), `sex`, `view`, `findings` (`|`-separated NIH labels), `group` (0..8, or -1 above 90)
and `row` (the line of the source file, for error messages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxr_age.data.ages import group_index, parse_ages
from cxr_age.errors import CxrAgeError

COLUMNS = ("image", "patient_id", "age", "sex", "view", "findings", "group", "row")
VIEWS = ("PA", "AP", "all")

# Accepted spellings of each column (compared case-insensitively); the first two are required.
_ALIASES: dict[str, tuple[str, ...]] = {
    "image": ("image", "image index", "image_index", "path", "file", "filename"),
    "age": ("age", "patient age", "patient_age", "age_years"),
    "patient_id": ("patient_id", "patient id", "patient", "subject_id"),
    "sex": ("sex", "patient gender", "gender"),
    "view": ("view", "view position", "view_position", "viewposition"),
    "findings": ("findings", "finding labels", "finding_labels", "labels"),
}
_REQUIRED = ("image", "age")
_NIH_NAME = re.compile(r"^(\d{8})_\d{3}\.png$")


@dataclass
class Table:
    """A normalised metadata table and what reading it found worth saying."""

    frame: pd.DataFrame
    source: Path
    notes: list[str]


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise CxrAgeError(f"CSV file not found: {path}")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", skipinitialspace=True)
    except UnicodeDecodeError as err:
        raise CxrAgeError(f"{path} is not UTF-8 text (bad byte at offset {err.start})") from None
    except pd.errors.EmptyDataError:
        raise CxrAgeError(f"{path} is empty: expected a header row with at least image and age") from None
    except (pd.errors.ParserError, OSError, EOFError, ValueError) as err:
        raise CxrAgeError(f"{path} cannot be read as CSV: {str(err).splitlines()[0]}") from None


def _find_columns(frame: pd.DataFrame, path: Path) -> dict[str, str]:
    by_lower = {str(c).strip().lower(): c for c in frame.columns}
    found = {}
    for name, aliases in _ALIASES.items():
        match = next((by_lower[a] for a in aliases if a in by_lower), None)
        if match is not None:
            found[name] = match
    missing = [n for n in _REQUIRED if n not in found]
    if missing:
        wanted = "; ".join(f"{n} (one of: {', '.join(_ALIASES[n])})" for n in missing)
        raise CxrAgeError(f"{path} lacks the column(s) {wanted}; it has: {', '.join(map(str, frame.columns))}")
    return found


def _listing(rows: pd.DataFrame, column: str, limit: int = 5) -> str:
    shown = ", ".join(f"row {r} ({v!r})" for r, v in zip(rows["row"][:limit], rows[column][:limit]))
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _patient_ids(raw: pd.DataFrame, columns: dict[str, str], frame: pd.DataFrame, path: Path,
                 notes: list[str]) -> pd.Series:
    if "patient_id" in columns:
        ids = raw[columns["patient_id"]].str.strip()
        blank = frame[(ids == "").to_numpy()]
        if len(blank):
            raise CxrAgeError(f"{path}: {len(blank)} rows have no patient id: {_listing(blank, 'image')}")
        return ids.where(~ids.str.fullmatch(r"\d+"), ids.str.lstrip("0").replace("", "0"))
    nih = frame["image"].map(lambda name: _NIH_NAME.match(Path(name).name))
    if nih.notna().all():
        notes.append("no patient id column: patient ids taken from the NIH file names (NNNNNNNN_NNN.png)")
        return nih.map(lambda m: m.group(1).lstrip("0") or "0")
    notes.append(
        "no patient id column: each image is treated as its own patient, so splits are by patient only "
        "if no person has two images"
    )
    return frame["image"]


def read_table(path: str | Path) -> Table:
    """Read an NIH `Data_Entry_2017*.csv[.gz]` or a generic CSV (image + age in years, optional patient id,
    sex, view and finding labels) into the normalised table. Ages that do not parse, images without a
    name and patients without an id are errors naming the rows."""
    path = Path(path)
    raw = _read_csv(path)
    columns = _find_columns(raw, path)
    frame = pd.DataFrame({"row": range(2, len(raw) + 2)})
    frame["image"] = raw[columns["image"]].str.strip().to_numpy()
    if frame.empty:
        raise CxrAgeError(f"{path} has a header but no rows")
    notes: list[str] = []
    no_name = frame[frame["image"] == ""]
    if len(no_name):
        raise CxrAgeError(f"{path}: {len(no_name)} rows have no image name: {_listing(no_name, 'image')}")
    raw_age = raw[columns["age"]].to_numpy()
    frame["age"] = parse_ages(pd.Series(raw_age)).to_numpy()
    bad_age = frame[frame["age"].isna()].assign(raw_age=raw_age[frame["age"].isna().to_numpy()])
    if len(bad_age):
        raise CxrAgeError(
            f"{path}: {len(bad_age)} ages do not parse as years (or NNNY/NNNM/NNNW/NNND): "
            + _listing(bad_age, "raw_age")
        )
    frame["patient_id"] = _patient_ids(raw, columns, frame, path, notes).to_numpy()
    for name, default in (("sex", ""), ("view", ""), ("findings", "")):
        frame[name] = raw[columns[name]].str.strip().to_numpy() if name in columns else default
    frame["view"] = frame["view"].str.upper()
    frame["group"] = group_index(frame["age"])
    duplicated = frame[frame["image"].duplicated(keep="first")]
    if len(duplicated):
        raise CxrAgeError(f"{path}: {len(duplicated)} images are listed twice: {_listing(duplicated, 'image')}")
    return Table(frame[list(COLUMNS)], path, notes)
