"""Dataset statistics: images and patients per age group and split (the counts beside the paper's Figure 1,
whose histogram is `cxr_age.viz.figures.age_histogram`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxr_age.io.ages import GROUP_LABELS, NO_GROUP
from cxr_age.io.splits import SPLITS


def group_split_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Images and patients per age group (rows, plus `over 90` when present and `total`) and split
    (columns `images_<split>`, `images_all`, `patients_<split>`, `patients_all`). A patient whose images
    fall in two groups is counted in both, so patient columns need not add up to the total row."""
    labels = pd.Series(np.asarray(GROUP_LABELS + ("over 90",))[frame["group"].to_numpy()], index=frame.index)
    order = list(GROUP_LABELS) + (["over 90"] if (frame["group"] == NO_GROUP).any() else [])
    columns = {}
    for measure, how in (("images", "size"), ("patients", "nunique")):
        for split in SPLITS + ("all",):
            part = frame if split == "all" else frame[frame["split"] == split]
            by_group = part.groupby(labels[part.index])["patient_id"].agg(how)
            total = len(part) if how == "size" else part["patient_id"].nunique()
            columns[f"{measure}_{split}"] = by_group.reindex(order, fill_value=0).tolist() + [total]
    table = pd.DataFrame(columns, index=pd.Index(order + ["total"], name="age_group"))
    return table.astype(int)
