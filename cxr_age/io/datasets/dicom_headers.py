"""Tables of DICOM header fields, one row per file, as released with the RSNA Pneumonia Detection Challenge
(`PatientAge`, `PatientID`, `PatientSex`, `ViewPosition`, `Filename`, ...) or the NLM / Indiana University
Open-i collection (`Patient's Birth Date`, `Study Date`, `View Position`, `filename`, ...).

Columns are matched by DICOM keyword or name alike (`PatientAge` and `Patient's Age`). The age is
`PatientAge` (`058Y`, `011M`, or plain years) where there is one, else the exact years from the birth date
to the study date. Files whose `Modality` is not CR or DX, or whose `BodyPartExamined` is not the chest, are
not chest radiographs; lateral views are left out, and so are views not recorded when the table holds
laterals (Open-i leaves 2,586 of 7,469 blank).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cxr_age.io.ages import parse_ages, years_between
from cxr_age.io.datasets.base import (
    Dataset,
    Normalised,
    first_reason,
    frame_of,
    normalise_sex,
    normalise_views,
    text,
    unless,
    view_exclusions,
)
from cxr_age.io.dicom import CHEST_BODY_PARTS, RADIOGRAPHY

FIELDS = {
    "file": ("filename", "file", "path"),
    "patient_id": ("patientid",),
    "age": ("patientage", "patientsage"),
    "birth": ("patientbirthdate", "patientsbirthdate"),
    "study": ("studydate", "acquisitiondate", "contentdate", "seriesdate"),
    "sex": ("patientsex", "patientssex"),
    "view": ("viewposition",),
    "modality": ("modality",),
    "body_part": ("bodypartexamined",),
}


def _compact(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _fields(columns: list[str]) -> dict[str, str]:
    """The table's column for each field it has, by DICOM keyword or name."""
    by_compact = {_compact(c): c for c in columns}
    found = {}
    for field, spellings in FIELDS.items():
        match = next((by_compact[s] for s in spellings if s in by_compact), None)
        if match is not None:
            found[field] = match
    return found


class DicomHeaders(Dataset):
    name = "dicom-headers"
    title = "a DICOM header table"
    homepage = "https://www.kaggle.com/c/rsna-pneumonia-detection-challenge"

    def matches(self, columns: list[str]) -> bool:
        found = _fields(columns)
        has_age = "age" in found or {"birth", "study"} <= set(found)
        return has_age and {"file", "patient_id", "view"} <= set(found)

    def _ages(self, raw: pd.DataFrame, found: dict[str, str]) -> tuple[pd.Series, str]:
        if "age" in found:
            return parse_ages(text(raw, found["age"])), f"age from {found['age']}"
        return (years_between(text(raw, found["birth"]), text(raw, found["study"])),
                f"age = {found['study']} - {found['birth']} in exact years")

    def normalise(self, raw: pd.DataFrame, csv: Path, patients: str | None = None) -> Normalised:
        found = _fields(list(raw.columns))
        if not self.matches(list(raw.columns)):
            self.require(raw, csv, ("Filename", "PatientID", "ViewPosition", "PatientAge or PatientBirthDate and "
                                    "StudyDate"))
        ages, how = self._ages(raw, found)
        views = normalise_views(text(raw, found["view"]))
        modality = text(raw, found.get("modality", "")).str.upper()
        body_part = text(raw, found.get("body_part", "")).str.upper()
        chest = body_part.str.contains("|".join(CHEST_BODY_PARTS)) | (body_part == "")
        kind = unless(modality.isin((*RADIOGRAPHY, "")) & chest, "not_chest_radiograph")
        age_reason = unless(ages.notna(), "age_missing")
        frame = frame_of(image=text(raw, found["file"]).str.replace(r"^(\./)+", "", regex=True),
                         patient_id=text(raw, found["patient_id"]), age=ages,
                         sex=normalise_sex(text(raw, found.get("sex", ""))), view=views, findings="",
                         excluded=first_reason(kind, age_reason, view_exclusions(views, other_views=False)))
        return Normalised(frame, [how, "a header table carries no findings: findings blank"])


DATASET = DicomHeaders()
