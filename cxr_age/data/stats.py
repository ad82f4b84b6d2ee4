"""Dataset statistics: the paper's Figure 1 (histogram of age, Karargyris et al. 2019) and images and
patients per age group and split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxr_age.data.ages import GROUP_LABELS, NO_GROUP
from cxr_age.data.splits import SPLITS
from cxr_age.figures import new_figure
from cxr_age.run_dir import write_atomic


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


def age_histogram(frame: pd.DataFrame, path: Path, removed: int, max_age: float, source: str) -> Path:
    """The paper's Figure 1: number of images per year of age, after removing ages above `max_age`."""
    ages = np.floor(frame["age"].to_numpy()).astype(int)
    counts = np.bincount(ages, minlength=int(max_age) + 1)
    figure, axes = new_figure(figsize=(8, 4.5), dpi=120)
    axes.bar(np.arange(len(counts)), counts, width=1.0, color="#3b6ea5", edgecolor="white", linewidth=0.3)
    axes.set_xlabel("age (years)")
    axes.set_ylabel("number of images")
    axes.set_xlim(-0.5, len(counts) - 0.5)
    axes.set_title(f"Age of {len(frame):,} images ({removed:,} over {max_age:g} removed)", fontsize=11)
    figure.text(0.01, 0.01, source, fontsize=7, color="gray")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png"))
    return path
