"""COVID-19 image data collection (Cohen et al., 2020): `metadata.csv` of images gathered from publications
and websites, X-ray and CT, one row per image.

Frontal X-rays only: views PA, AP, AP Supine and AP erect are kept, lateral views (`L`) left out, and CT
rows (`modality` CT, views Axial / Coronal) are not chest radiographs. Many rows have no age; they are
counted and left out. The image is `folder/filename`; `finding` (e.g. `Pneumonia/Viral/COVID-19`) is the
finding.
"""

from __future__ import annotations

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

X_RAY = ("X-RAY", "")


class Covid(Dataset):
    name = "covid"
    title = "COVID-19 image data collection"
    signature = ("patientid", "finding", "folder", "filename")
    homepage = "https://github.com/ieee8023/covid-chestxray-dataset"
    paths_from_table_folder = True  # `folder/filename`: images/..., volumes/...
    healthy_label = "No Finding"  # the collection's few `No Finding` images

    def normalise(self, raw: pd.DataFrame, csv: Path, patients: str | None = None) -> Normalised:
        self.require(raw, csv, ("patientid", "age", "sex", "finding", "view", "folder", "filename"))
        ages = pd.to_numeric(text(raw, "age"), errors="coerce").where(lambda years: years >= 0)
        views = normalise_views(raw["view"])
        kind = unless(text(raw, "modality").str.upper().isin(X_RAY), "not_chest_radiograph")
        age_reason = unless(ages.notna(), "age_missing")
        frame = frame_of(image=text(raw, "folder") + "/" + text(raw, "filename"), patient_id=text(raw, "patientid"),
                         age=ages, sex=normalise_sex(raw["sex"]), view=views, findings=text(raw, "finding"),
                         excluded=first_reason(kind, age_reason, view_exclusions(views, other_views=False)))
        return Normalised(frame, ["frontal X-rays only (PA, AP, AP Supine, AP erect); rows without an age are "
                                  "counted and left out"])



DATASET = Covid()
