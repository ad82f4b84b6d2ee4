"""CheXpert (Irvin et al., AAAI 2019): `train.csv` / `valid.csv` of Stanford's 224,316 radiographs of 65,240
patients, frontal and lateral.

The patient id lives only in the path (`train/patient00001/study1/view1_frontal.jpg`). `Frontal/Lateral` and
`AP/PA` give the view; laterals are left out. The 14 label columns hold 1 (present), 0 (absent), -1
(uncertain) or blank (not mentioned): a finding is a 1; uncertain labels are not findings. An age of 90 means
"90 or older" (7,579 training images) and is left out as censored; the 3 images of age 0 are adults whose
age was not recorded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.datasets.base import (
    LATERAL,
    Dataset,
    Normalised,
    first_reason,
    frame_of,
    normalise_sex,
    patient_from_path,
    positive_labels,
    text,
    view_exclusions,
)

LABELS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
          "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
          "Fracture", "Support Devices")
CENSORED_AT = 90.0
PATIENT_FOLDER = re.compile(r"patient\d+")


class CheXpert(Dataset):
    name = "chexpert"
    title = "CheXpert"
    signature = ("Path", "Frontal/Lateral", "AP/PA")
    homepage = "https://stanfordmlgroup.github.io/competitions/chexpert/"
    healthy_label = "No Finding"  # its `No Finding` column marked 1

    def normalise(self, raw: pd.DataFrame, csv: Path, patients: str | None = None) -> Normalised:
        self.require(raw, csv, ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"))
        images = text(raw, "Path")
        patient = patient_from_path(images, PATIENT_FOLDER)
        if patient is None:
            raise CxrAgeError(f"{csv}: some paths hold no patientNNNNN folder, so patients cannot be told apart "
                              f"(first: {images[~images.str.contains('patient')].iloc[0]!r})")
        ages = pd.to_numeric(text(raw, "Age"), errors="coerce")
        lateral = text(raw, "Frontal/Lateral").str.lower() == "lateral"
        # Frontal images with AP/PA `LL` or `RL` (17 in the training table) are decubitus views, not laterals.
        views = text(raw, "AP/PA").str.upper().where(~lateral, LATERAL)
        age_reason = pd.Series("", index=raw.index)
        age_reason[ages >= CENSORED_AT] = "age_censored"
        age_reason[(ages == 0) | ages.isna()] = "age_missing"
        frame = frame_of(image=images, patient_id=patient, age=ages, sex=normalise_sex(raw["Sex"]), view=views,
                         findings=positive_labels(raw, LABELS),
                         excluded=first_reason(age_reason, view_exclusions(views, other_views=False)))
        notes = [f"patient ids from the path's patientNNNNN folder: {patient.nunique():,} patients",
                 "findings are the labels marked 1; uncertain (-1) and unmentioned labels are not findings",
                 "age 90 means 90 or older: those images are left out as censored; age 0 means not recorded"]
        return Normalised(frame, notes)

    def default_image_dir(self, csv: Path) -> Path:
        """CheXpert's paths start with the folder that holds the table (`CheXpert-v1.0-small/train/...`), so they
        are relative to the folder above it."""
        return csv.parent.parent if csv.parent.name.startswith("CheXpert") else super().default_image_dir(csv)


DATASET = CheXpert()
