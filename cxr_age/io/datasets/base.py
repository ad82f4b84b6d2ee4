"""The contract every dataset adapter meets, and the pieces they share.

An adapter turns one dataset's own metadata table into the normalised table: `image` (path relative to the
image folder), `patient_id`, `age` (float years), `sex` (`M`, `F` or blank), `view` (`PA`, `AP`, `LATERAL`,
another projection, or blank), `findings` (`|`-separated labels) and `excluded`: blank for a usable row,
else the key of a reason in `REASONS`. Excluded rows stay in the table so that every removal is counted,
named and written to `removed.csv` (`cxr_age.io.selection`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError

NORMALISED = ("image", "patient_id", "age", "sex", "view", "findings", "excluded")

# Why a row is left out, by key; the selection counts each as `removed_<key>`.
REASONS: dict[str, str] = {
    "implausible_age": "implausible age (over 120 years: a data-entry error, not an old patient)",
    "age_censored": "age censored (the dataset caps it, so the true age is this or older)",
    "age_missing": "age not recorded",
    "lateral_view": "lateral view (the model reads frontal radiographs)",
    "view_not_recorded": "view not recorded, and the table holds lateral views",
    "not_frontal": "neither a PA nor an AP projection",
    "not_chest_radiograph": "not a chest radiograph (modality or body part)",
    "no_patient_record": "no record of the patient in the patients table",
}
FRONTAL = ("PA", "AP")
LATERAL = "LATERAL"
_LATERAL_SPELLINGS = {"L", "LL", "RL", "LAT", "LATERAL", "LARGE LATERAL", "XTABLE LATERAL"}
_AP_SPELLINGS = {"AP", "APS", "AP SUPINE", "AP ERECT", "AP_HORIZONTAL", "AP HORIZONTAL"}
_SEX = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F"}


@dataclass
class Normalised:
    """An adapter's output: the normalised rows, and what a user must be told about how they were made
    (`notes`) or must not miss (`warnings`)."""

    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Dataset:
    """One dataset's table layout. Subclasses set the class attributes and implement `normalise`.

    Attributes:
        name: the `dataset` setting's value.
        title: the dataset's name in words.
        signature: columns whose presence identifies the table (exact names); empty for the generic CSV.
        homepage: where to download it.
        paths_from_table_folder: whether the image paths start in the table's own folder (`files/...`,
            `images/...`) rather than in an image folder beside it.
        healthy_label: the finding that marks an image without disease (`No Finding`, PadChest's `normal`),
            which `--healthy-only` trains on; empty where the table records no findings.
    """

    name: str = ""
    title: str = ""
    signature: tuple[str, ...] = ()
    homepage: str = ""
    paths_from_table_folder: bool = False
    healthy_label: str = ""

    def matches(self, columns: list[str]) -> bool:
        """Whether a table with these columns has this dataset's layout."""
        return bool(self.signature) and set(self.signature) <= {str(c).strip() for c in columns}

    def normalise(self, raw: pd.DataFrame, csv: Path, patients: str | None = None) -> Normalised:
        """The normalised rows of `raw` (read as text, one row per source row, in order)."""
        raise NotImplementedError

    def default_image_dir(self, csv: Path) -> Path:
        """The folder the image paths are relative to when the user names none: the table's `images/`
        subfolder, else its own folder (always its own where `paths_from_table_folder`)."""
        nested = csv.parent / "images"
        return nested if nested.is_dir() and not self.paths_from_table_folder else csv.parent

    def require(self, raw: pd.DataFrame, csv: Path, columns: tuple[str, ...]) -> None:
        """A one-line error naming the columns of this layout that `raw` lacks."""
        missing = [c for c in columns if c not in raw.columns]
        if missing:
            raise CxrAgeError(f"{csv} is read as {self.title} but lacks the column(s) {', '.join(missing)}; "
                              f"it has: {', '.join(map(str, raw.columns[:20]))}")


def read_text_table(path: Path) -> pd.DataFrame:
    """A CSV (plain or gzipped) with every cell as text, blanks as empty strings; unreadable files are a
    one-line error."""
    if not path.is_file():
        raise CxrAgeError(f"CSV file not found: {path}")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", skipinitialspace=True)
    except UnicodeDecodeError as err:
        raise CxrAgeError(f"{path} is not UTF-8 text (bad byte at offset {err.start})") from None
    except pd.errors.EmptyDataError:
        raise CxrAgeError(f"{path} is empty: expected a header row") from None
    except (pd.errors.ParserError, OSError, EOFError, ValueError) as err:
        raise CxrAgeError(f"{path} cannot be read as CSV: {str(err).splitlines()[0]}") from None


def frame_of(**columns: pd.Series | np.ndarray | str) -> pd.DataFrame:
    """The normalised columns as one frame (scalars broadcast), in `NORMALISED` order."""
    length = next(len(v) for v in columns.values() if not isinstance(v, str))
    data = {name: (np.full(length, columns.get(name, ""), dtype=object) if isinstance(columns.get(name, ""), str)
                   else np.asarray(columns[name])) for name in NORMALISED}
    frame = pd.DataFrame(data)
    frame["age"] = frame["age"].astype(float)
    return frame


def text(raw: pd.DataFrame, column: str) -> pd.Series:
    """A column as stripped text; blank where the table lacks it."""
    if column not in raw.columns:
        return pd.Series("", index=raw.index)
    return raw[column].astype(str).str.strip()


def normalise_sex(values: pd.Series) -> pd.Series:
    """`M` or `F` from M/F/Male/Female in any case; blank for anything else (unknown, other, missing)."""
    return values.astype(str).str.strip().str.upper().map(_SEX).fillna("")


def normalise_views(values: pd.Series) -> pd.Series:
    """`PA`, `AP` (AP supine, erect or horizontal included), `LATERAL` (L, LL, RL, LATERAL, ...), else the
    projection as written, upper case; blank where none is recorded."""
    upper = values.astype(str).str.strip().str.upper()
    return upper.where(~upper.isin(_AP_SPELLINGS), "AP").where(~upper.isin(_LATERAL_SPELLINGS), LATERAL)


def view_exclusions(views: pd.Series, other_views: bool = True) -> pd.Series:
    """The reason key each normalised view is left out for: lateral views always; blank views when the
    table holds lateral views (a blank could be one); other projections unless `other_views` keeps them."""
    excluded = pd.Series("", index=views.index)
    excluded[views == LATERAL] = "lateral_view"
    if (views == LATERAL).any():
        excluded[views == ""] = "view_not_recorded"
    if not other_views:
        excluded[~views.isin((*FRONTAL, LATERAL, ""))] = "not_frontal"
    return excluded


def unless(ok: pd.Series, key: str) -> pd.Series:
    """The reason `key` for each row where `ok` is False, blank where it holds."""
    return pd.Series("", index=ok.index).where(ok, key)


def first_reason(*reasons: pd.Series) -> pd.Series:
    """Per row, the first non-blank reason key of several checks (earlier ones win)."""
    result = reasons[-1].copy()
    for earlier in reversed(reasons[:-1]):
        result = earlier.where(earlier != "", result)
    return result


def positive_labels(raw: pd.DataFrame, labels: tuple[str, ...]) -> pd.Series:
    """`|`-joined names of the label columns holding 1 (CheXpert convention: 1 present, 0 absent, -1
    uncertain, blank unmentioned); uncertain and unmentioned labels are not findings."""
    present = pd.DataFrame({label: pd.to_numeric(text(raw, label), errors="coerce") == 1 for label in labels})
    names = np.asarray(labels, dtype=object)
    return pd.Series(["|".join(names[row]) for row in present.to_numpy()], index=raw.index, dtype=object)


def patient_from_path(images: pd.Series, pattern: re.Pattern[str]) -> pd.Series | None:
    """The first path component matching `pattern` (e.g. `patient00001`) in every image path, or None if
    any path has none."""
    found = images.str.split("/").map(lambda parts: next((p for p in parts[:-1] if pattern.fullmatch(p)), None))
    return None if found.isna().any() else found
