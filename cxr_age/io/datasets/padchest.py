"""PadChest (Bustos et al., Medical Image Analysis 2020): `PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv`,
160,868 radiographs of 67,625 patients from Hospital San Juan, Alicante.

Only the birth year is recorded (`PatientBirth`), so the age is the study's year (`StudyDate_DICOM`) minus it:
the true age is that or up to a year less. `Projection` gives the view (PA, AP and AP_horizontal kept; L,
COSTAL, EXCLUDE and UNK left out); the image is `ImageDir/ImageID`. `Labels` (a list written as text, e.g.
`['pneumonia', 'copd signs']`) gives the findings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

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

_QUOTED = re.compile(r"'([^']*)'")


def findings_from_list(labels: pd.Series) -> pd.Series:
    """`['a', 'b']` -> `a|b` (stripped, blanks dropped)."""
    return labels.map(lambda value: "|".join(s.strip() for s in _QUOTED.findall(value) if s.strip()))


class PadChest(Dataset):
    name = "padchest"
    title = "PadChest"
    signature = ("ImageID", "ImageDir", "PatientBirth")
    homepage = "https://bimcv.cipf.es/bimcv-projects/padchest/"
    healthy_label = "normal"  # the radiologists' `normal` label

    def normalise(self, raw: pd.DataFrame, csv: Path, patients: str | None = None) -> Normalised:
        self.require(raw, csv, ("ImageID", "ImageDir", "StudyDate_DICOM", "PatientID", "PatientBirth"))
        birth = pd.to_numeric(text(raw, "PatientBirth"), errors="coerce")
        study_year = pd.to_numeric(text(raw, "StudyDate_DICOM").str.slice(0, 4), errors="coerce")
        ages = (study_year - birth).where(lambda years: years >= 0)
        projection = text(raw, "Projection")
        views = normalise_views(projection.where(projection != "", text(raw, "ViewPosition_DICOM")))
        age_reason = unless(ages.notna(), "age_missing")
        folder = pd.to_numeric(text(raw, "ImageDir"), errors="coerce").astype("Int64").astype(str)
        frame = frame_of(image=folder + "/" + text(raw, "ImageID"), patient_id=text(raw, "PatientID"), age=ages,
                         sex=normalise_sex(text(raw, "PatientSex_DICOM")), view=views,
                         findings=findings_from_list(text(raw, "Labels")),
                         excluded=first_reason(age_reason, view_exclusions(views, other_views=False)))
        notes = ["age = study year - birth year (PadChest records only the year of birth: the true age is that or "
                 "up to a year less)"]
        return Normalised(frame, notes)


DATASET = PadChest()
