"""NIH ChestX-ray14 (Wang et al., CVPR 2017): `Data_Entry_2017.csv` and its 2020 correction
`Data_Entry_2017_v2020.csv`, 112,120 frontal images of 30,805 patients; the paper's dataset.

Ages are years (`58`) in v2020 and `058Y` / `011M` / `001D` in the 2017 release, whose data-entry errors of
148-414 years are implausible ages; patient ids lose the 2017 release's leading zeros so both releases agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.ages import parse_ages
from cxr_age.io.datasets.base import Dataset, Normalised, frame_of, normalise_sex, normalise_views, text

COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "Patient Age", "Patient Gender", "View Position")


def strip_zeros(ids: pd.Series) -> pd.Series:
    """Numeric ids without leading zeros (`00000032` -> `32`), others unchanged."""
    return ids.where(~ids.str.fullmatch(r"\d+"), ids.str.lstrip("0").replace("", "0"))


def unparsed_ages(ages: pd.Series, raw_ages: pd.Series, csv: Path) -> None:
    """A one-line error naming the rows (lines of the file, the header being line 1) whose age text is not an
    age."""
    bad = ages.isna().to_numpy()
    if bad.any():
        rows = np.arange(2, len(ages) + 2)[bad]
        shown = ", ".join(f"row {r} ({v!r})" for r, v in zip(rows[:5], raw_ages[bad][:5]))
        more = f" and {int(bad.sum()) - 5} more" if bad.sum() > 5 else ""
        raise CxrAgeError(f"{csv}: {int(bad.sum())} ages do not parse as years (or NNNY/NNNM/NNNW/NNND): "
                          f"{shown}{more}")


class NIH(Dataset):
    name = "nih"
    title = "NIH ChestX-ray14"
    signature = ("Image Index", "Patient Age", "Finding Labels")
    homepage = "https://nihcc.app.box.com/v/ChestXray-NIHCC"
    healthy_label = "No Finding"  # the label of images with none of the 14 findings

    def normalise(self, raw: pd.DataFrame, csv: Path, patients: str | None = None) -> Normalised:
        self.require(raw, csv, COLUMNS)
        raw_ages = text(raw, "Patient Age")
        ages = parse_ages(raw_ages)
        unparsed_ages(ages, raw_ages, csv)
        frame = frame_of(image=text(raw, "Image Index"), patient_id=strip_zeros(text(raw, "Patient ID")), age=ages,
                         sex=normalise_sex(raw["Patient Gender"]), view=normalise_views(raw["View Position"]),
                         findings=text(raw, "Finding Labels"), excluded="")
        return Normalised(frame)


DATASET = NIH()
