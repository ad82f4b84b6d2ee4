"""Any CSV with an image path and an age in years: the fallback when no known layout matches.

Columns are found by name, case-insensitively (`image`/`path`/`filename`, `age`/`patient age`, optional
`patient_id`, `sex`, `view`, `findings`). Without a patient id column the patient comes from NIH file names
(`NNNNNNNN_NNN.png`) or a patient folder in the path (`patient00001/`, `p10000032/`, `subject_12/`), and the
output says which; failing both, each image is its own patient, under a warning, since a person with two
images could then sit in two splits. Lateral views are left out; other views are kept as written.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.ages import parse_ages
from cxr_age.io.datasets.base import (
    Dataset,
    Normalised,
    frame_of,
    normalise_sex,
    normalise_views,
    patient_from_path,
    text,
    view_exclusions,
)
from cxr_age.io.datasets.nih import strip_zeros, unparsed_ages

# Accepted spellings of each column (compared case-insensitively); the first two are required.
ALIASES: dict[str, tuple[str, ...]] = {
    "image": ("image", "image index", "image_index", "path", "file", "filename"),
    "age": ("age", "patient age", "patient_age", "age_years"),
    "patient_id": ("patient_id", "patient id", "patient", "patientid", "subject_id"),
    "sex": ("sex", "patient gender", "gender"),
    "view": ("view", "view position", "view_position", "viewposition"),
    "findings": ("findings", "finding labels", "finding_labels", "labels"),
}
REQUIRED = ("image", "age")
NIH_NAME = re.compile(r"^(\d{8})_\d{3}\.png$")
PATIENT_FOLDER = re.compile(r"(?i)(patient|pat|subject|p)[_-]?\d+")
ONE_PATIENT_PER_IMAGE = (
    "no patient id column and no patient folder in the image paths: EACH IMAGE IS TREATED AS ITS OWN PATIENT, so "
    "a person with several images can sit in two splits and the test metrics come out too good; add a "
    "patient_id column (or name the dataset with `dataset`)"
)


def find_columns(raw: pd.DataFrame, csv: Path) -> dict[str, str]:
    """The table's column for each alias it has; the required ones missing are a one-line error."""
    by_lower = {str(c).strip().lower(): c for c in raw.columns}
    found = {}
    for name, aliases in ALIASES.items():
        match = next((by_lower[a] for a in aliases if a in by_lower), None)
        if match is not None:
            found[name] = match
    missing = [n for n in REQUIRED if n not in found]
    if missing:
        wanted = "; ".join(f"{n} (one of: {', '.join(ALIASES[n])})" for n in missing)
        raise CxrAgeError(f"{csv} lacks the column(s) {wanted}; it has: {', '.join(map(str, raw.columns))}")
    return found


def patient_ids(raw: pd.DataFrame, columns: dict[str, str], images: pd.Series,
                normalised: Normalised) -> pd.Series:
    """The patient of each row, saying in `normalised` how it was found."""
    if "patient_id" in columns:
        return strip_zeros(text(raw, columns["patient_id"]))
    nih = images.map(lambda name: NIH_NAME.match(Path(name).name))
    if nih.notna().all():
        normalised.notes.append("no patient id column: patient ids taken from the NIH file names (NNNNNNNN_NNN.png)")
        return nih.map(lambda m: m.group(1).lstrip("0") or "0")
    folders = patient_from_path(images, PATIENT_FOLDER)
    if folders is not None:
        normalised.notes.append(f"no patient id column: patient ids taken from the patient folder in each image "
                                f"path (e.g. {folders.iloc[0]}): {folders.nunique():,} patients")
        return folders
    normalised.warnings.append(ONE_PATIENT_PER_IMAGE)
    return images


class GenericCSV(Dataset):
    name = "csv"
    title = "a generic CSV"
    healthy_label = "No Finding"  # findings are written in ChestX-ray14's labels

    def normalise(self, raw: pd.DataFrame, csv: Path, patients: str | None = None) -> Normalised:
        columns = find_columns(raw, csv)
        images = text(raw, columns["image"])
        raw_ages = raw[columns["age"]].astype(str)
        ages = parse_ages(raw_ages)
        unparsed_ages(ages, raw_ages, csv)
        normalised = Normalised(pd.DataFrame())
        # text() gives a blank column for an optional one the table lacks
        sex, view, findings = (text(raw, columns.get(name, "")) for name in ("sex", "view", "findings"))
        views = normalise_views(view)
        normalised.frame = frame_of(image=images, patient_id=patient_ids(raw, columns, images, normalised),
                                    age=ages, sex=normalise_sex(sex).where(lambda s: s != "", sex), view=views,
                                    findings=findings, excluded=view_exclusions(views))
        return normalised


DATASET = GenericCSV()
