"""Train / validation / test splits by patient (Karargyris et al. 2019: 80/10/10 by patient ID).

No person may have images in two splits: every split function ends in `check_disjoint`, which stops the
run if one does. Within each age stratum (the decade of a patient's median age) patients are dealt out in
a seeded random order, largest first, each to the split furthest below its share of all images dealt so
far, so the image fractions come out near 80/10/10 overall and in every age group, small data sets included.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError

SPLITS = ("train", "val", "test")
FRACTIONS = (0.8, 0.1, 0.1)
NIH_LISTS = ("train_val_list.txt", "test_list.txt")
SPLIT_COLUMNS = ["image", "patient_id", "age", "sex", "view", "findings", "group", "split", "path", "dataset"]


def _deal(patients: pd.DataFrame, fractions: tuple[float, ...], seed: int) -> dict[str, int]:
    """Patient id -> split index, dealing patients (columns: patient_id, images, stratum) to splits."""
    rng = np.random.default_rng(seed)
    shares = np.asarray(fractions, dtype=float) / sum(fractions)
    assignment: dict[str, int] = {}
    filled = np.zeros(len(shares))
    for _, stratum in patients.groupby("stratum", sort=True):
        order = stratum.iloc[rng.permutation(len(stratum))]
        order = order.sort_values("images", ascending=False, kind="stable")
        for patient, images in zip(order["patient_id"], order["images"]):
            target = np.argmax(shares * (filled.sum() + images) - filled)
            filled[target] += images
            assignment[patient] = int(target)
    return assignment


def _patients(frame: pd.DataFrame) -> pd.DataFrame:
    per_patient = frame.groupby("patient_id", sort=True)["age"].agg(["size", "median"]).reset_index()
    per_patient.columns = ["patient_id", "images", "median_age"]
    per_patient["stratum"] = np.floor(per_patient["median_age"] / 10).astype(int)
    return per_patient


def split_by_patient(frame: pd.DataFrame, seed: int = 0,
                     fractions: tuple[float, ...] = FRACTIONS) -> pd.Series:
    """Split name for each row: 80/10/10 by patient, stratified by age, reproducible for a seed."""
    assignment = _deal(_patients(frame), fractions, seed)
    names = np.asarray(SPLITS[: len(fractions)])
    split = pd.Series(names[frame["patient_id"].map(assignment).to_numpy()], index=frame.index, name="split")
    check_disjoint(frame.assign(split=split))
    return split


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        raise CxrAgeError(f"NIH split list not found: {path} (expected {' and '.join(NIH_LISTS)} in that folder)")
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def split_from_nih_lists(frame: pd.DataFrame, lists_dir: str | Path, seed: int = 0) -> pd.Series:
    """NIH's official split: `test_list.txt` is the test set; `train_val_list.txt` is divided 8:1 into
    train and validation by patient, as above. An image in neither list is an error."""
    lists_dir = Path(lists_dir)
    train_val, test = (_read_list(lists_dir / name) for name in NIH_LISTS)
    names = frame["image"].map(lambda image: Path(image).name)
    in_test, in_train_val = names.isin(test), names.isin(train_val)
    unlisted = frame.loc[~(in_test | in_train_val), "image"]
    if len(unlisted):
        raise CxrAgeError(
            f"{len(unlisted)} images are in neither NIH list in {lists_dir} (first: {', '.join(unlisted[:5])})"
        )
    split = pd.Series("test", index=frame.index, name="split")
    rest = frame[~in_test]
    if len(rest):
        assignment = _deal(_patients(rest), FRACTIONS[:2], seed)
        split[~in_test] = np.asarray(SPLITS[:2])[rest["patient_id"].map(assignment).to_numpy()]
    check_disjoint(frame.assign(split=split))
    return split


def check_disjoint(frame: pd.DataFrame) -> int:
    """Stop with an error naming them if any patient has images in two splits; return 0 shared patients."""
    splits_per_patient = frame.groupby("patient_id")["split"].nunique()
    shared = splits_per_patient[splits_per_patient > 1]
    if len(shared):
        raise CxrAgeError(
            f"{len(shared)} patients are in more than one split (first: {', '.join(map(str, shared.index[:5]))}); "
            "splits must be by patient"
        )
    return 0


def assign_splits(frame: pd.DataFrame, seed: int, nih_lists: str | None = None) -> pd.DataFrame:
    """`frame` with a `split` column: NIH's official lists when given, else ours (80/10/10 by patient),
    dealt within each dataset of a frame that joins several, so every dataset is split 80/10/10."""
    if nih_lists:
        if frame.get("dataset", pd.Series("nih")).ne("nih").any():
            raise CxrAgeError("`nih_lists` splits NIH ChestX-ray14 alone; leave it out for other datasets")
        return frame.assign(split=split_from_nih_lists(frame, nih_lists, seed))
    if "dataset" not in frame or frame["dataset"].nunique() < 2:
        return frame.assign(split=split_by_patient(frame, seed))
    split = pd.concat([split_by_patient(part, seed) for _, part in frame.groupby("dataset", sort=True)])
    check_disjoint(frame.assign(split=split))
    return frame.assign(split=split)
