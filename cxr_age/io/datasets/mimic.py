"""MIMIC-CXR-JPG (Johnson et al., 2019): `mimic-cxr-2.0.0-metadata.csv`, ages from MIMIC-IV's `patients.csv`.

MIMIC shifts every date of a patient by the same random number of years, so only differences are real: the
age at a study is `anchor_age + (year of StudyDate - anchor_year)`, exact to about a year. `anchor_age` is
91 for everyone over 89 at the anchor year: those images are left out as censored. `ViewPosition` gives
the view (PA and AP kept); the image is `files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg`. Findings come from
`mimic-cxr-2.0.0-chexpert.csv` beside the table when it is there (CheXpert's labels, 1 = present).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.datasets.base import (
    Dataset,
    Normalised,
    first_reason,
    frame_of,
    normalise_sex,
    normalise_views,
    positive_labels,
    read_text_table,
    text,
    view_exclusions,
)
from cxr_age.io.datasets.chexpert import LABELS

CENSORED_ANCHOR_AGE = 89
PATIENT_COLUMNS = ("subject_id", "gender", "anchor_age", "anchor_year")


def _beside(csv: Path, *names: str) -> Path | None:
    return next((csv.parent / name for name in names if (csv.parent / name).is_file()), None)


def _patients(csv: Path, given: str | None) -> pd.DataFrame:
    path = Path(given) if given else _beside(csv, "patients.csv", "patients.csv.gz")
    if path is None:
        raise CxrAgeError(f"MIMIC-CXR's metadata has no ages: name MIMIC-IV's patients.csv as `patients`, or put "
                          f"it beside {csv.name}")
    table = read_text_table(path)
    missing = [c for c in PATIENT_COLUMNS if c not in table.columns]
    if missing:
        raise CxrAgeError(f"{path} is not MIMIC-IV's patients table: it lacks {', '.join(missing)}")
    return table.drop_duplicates("subject_id").set_index("subject_id")


def _findings(csv: Path, raw: pd.DataFrame) -> tuple[pd.Series, str]:
    labels_file = _beside(csv, "mimic-cxr-2.0.0-chexpert.csv", "mimic-cxr-2.0.0-chexpert.csv.gz")
    if labels_file is None:
        return pd.Series("", index=raw.index), "no mimic-cxr-2.0.0-chexpert.csv beside the table: findings blank"
    labels = read_text_table(labels_file).drop_duplicates(["subject_id", "study_id"])
    joined = raw[["subject_id", "study_id"]].merge(labels, how="left", on=["subject_id", "study_id"])
    joined.index = raw.index
    return positive_labels(joined, LABELS), f"findings from {labels_file.name} (labels marked 1)"


class MIMIC(Dataset):
    name = "mimic"
    title = "MIMIC-CXR-JPG"
    signature = ("dicom_id", "subject_id", "study_id", "ViewPosition")
    homepage = "https://physionet.org/content/mimic-cxr-jpg/"
    paths_from_table_folder = True  # `files/pXX/...`
    healthy_label = "No Finding"  # its CheXpert-labeller `No Finding` column marked 1

    def normalise(self, raw: pd.DataFrame, csv: Path, patients: str | None = None) -> Normalised:
        self.require(raw, csv, ("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate"))
        people = _patients(csv, patients)
        subject = text(raw, "subject_id")
        known = subject.isin(people.index)
        record = people.reindex(subject)
        anchor_age = pd.to_numeric(record["anchor_age"], errors="coerce").to_numpy()
        study_year = pd.to_numeric(text(raw, "StudyDate").str.slice(0, 4), errors="coerce").to_numpy()
        ages = anchor_age + study_year - pd.to_numeric(record["anchor_year"], errors="coerce").to_numpy()
        ages = pd.Series(ages, index=raw.index)
        age_reason = pd.Series("", index=raw.index)
        age_reason[anchor_age > CENSORED_ANCHOR_AGE] = "age_censored"
        age_reason[ages.isna()] = "age_missing"
        age_reason[~known] = "no_patient_record"
        views = normalise_views(raw["ViewPosition"])
        images = ("files/p" + subject.str.slice(0, 2) + "/p" + subject + "/s" + text(raw, "study_id") + "/"
                  + text(raw, "dicom_id") + ".jpg")
        findings, findings_note = _findings(csv, raw)
        frame = frame_of(image=images, patient_id=subject, age=ages,
                         sex=normalise_sex(pd.Series(record["gender"].to_numpy(), index=raw.index).fillna("")),
                         view=views, findings=findings,
                         excluded=first_reason(age_reason, view_exclusions(views, other_views=False)))
        notes = ["age = anchor_age + (study year - anchor_year) from MIMIC-IV patients.csv (dates are shifted per "
                 "patient, so only differences are real; exact to about a year); anchor_age over 89 is censored",
                 findings_note]
        return Normalised(frame, notes)



DATASET = MIMIC()
