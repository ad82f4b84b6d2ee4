"""A healthy reference: which images the dataset's own labels call free of disease (each adapter's
`healthy_label`: ChestX-ray14's and CheXpert's `No Finding`, PadChest's `normal`, ...). Brain-age work trains
on healthy people so that the gap measures ageing rather than disease (Cole & Franke 2017); for chest X-rays,
AG-RTM (Mitsuyama et al.) reports the gap regressing to the mean more strongly in the sick. With
`healthy_only`, training and validation (and so the conformal calibration) keep the healthy images only,
while the test split keeps every patient, so the error is reported on the healthy and on the others."""

from __future__ import annotations

import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io import datasets

TRAINED_SPLITS = ("train", "val")


def _label(dataset: str) -> str:
    name = dataset or "csv"  # runs made before datasets had names
    return datasets.get(name).healthy_label if name in datasets.DATASETS else ""


def healthy_mask(frame: pd.DataFrame) -> pd.Series:
    """True for each row whose findings hold its dataset's healthy label; a one-line error where a dataset
    has no such label, or its table recorded no findings at all."""
    names = frame["dataset"] if "dataset" in frame else pd.Series("csv", index=frame.index)
    labels = names.map(_label)
    for name in names[labels == ""].unique():
        raise CxrAgeError(f"the {name} table records no findings, so `healthy_only` cannot tell who is healthy; "
                          "train on every image, or on a dataset with finding labels")
    findings = frame["findings"].fillna("").astype(str)
    for name in names.unique():
        if (findings[names == name].str.strip() == "").all():
            raise CxrAgeError(f"the {name} table's findings are all blank, so `healthy_only` cannot tell who is "
                              "healthy; name its findings column (for a generic CSV: findings)")
    listed = findings.str.split("|")
    return pd.Series([label in {item.strip() for item in items} for label, items in zip(labels, listed)],
                     index=frame.index)


def keep_healthy(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The split frame with the non-healthy images of train and val removed (the test split untouched), and
    the counts kept and removed per split."""
    healthy = healthy_mask(frame)
    trained = frame["split"].isin(TRAINED_SPLITS)
    counts = {}
    for split in TRAINED_SPLITS:
        in_split = frame["split"] == split
        counts[f"{split}_kept"] = int((in_split & healthy).sum())
        counts[f"{split}_removed"] = int((in_split & ~healthy).sum())
    counts["test_healthy"] = int(((frame["split"] == "test") & healthy).sum())
    counts["test_not_healthy"] = int(((frame["split"] == "test") & ~healthy).sum())
    return frame[~trained | healthy], counts


def healthy_lines(counts: dict[str, int]) -> list[str]:
    """The healthy-only selection in words."""
    return [f"healthy only: kept {counts['train_kept']:,} training and {counts['val_kept']:,} validation images "
            f"the dataset's labels call healthy; removed {counts['train_removed']:,} and {counts['val_removed']:,} "
            f"with findings; the test split keeps every patient ({counts['test_healthy']:,} healthy, "
            f"{counts['test_not_healthy']:,} not), each group's error reported apart"]
