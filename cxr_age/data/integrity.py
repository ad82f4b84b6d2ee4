"""The split integrity check run at the start of every training and evaluation: a run's saved split files
must keep every patient in one split and every image in one place, and a resumed training run must find
the same split its data gives now. A mismatch stops the run with a message instead of a quietly leaky
or shifted test set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxr_age.data.splits import SPLITS, check_disjoint
from cxr_age.errors import CxrAgeError
from cxr_age.run_files import split_file


def read_split(run_dir: Path, split: str) -> pd.DataFrame:
    """One of a run's split files as written by training (ids and image names kept as text; runs made before
    datasets had names read as NIH or generic CSV, `dataset` blank)."""
    frame = pd.read_csv(split_file(run_dir, split), dtype={"patient_id": str, "image": str, "dataset": str},
                        keep_default_na=False)
    return frame if "dataset" in frame else frame.assign(dataset="")


def read_saved_splits(run_dir: Path) -> pd.DataFrame | None:
    """The run's `train.csv`, `val.csv` and `test.csv` stacked with their `split`, or None before any is
    written; a run with only some of them is an error."""
    present = [split for split in SPLITS if (split_file(run_dir, split)).is_file()]
    if not present:
        return None
    if len(present) < len(SPLITS):
        missing = sorted(set(SPLITS) - set(present))
        raise CxrAgeError(f"{run_dir} is missing its {', '.join(f'{s}.csv' for s in missing)}: the split is incomplete")
    return pd.concat([read_split(run_dir, split).assign(split=split) for split in SPLITS], ignore_index=True)


def check_saved_splits(run_dir: Path) -> None:
    """No patient in two of the run's splits, and no image listed twice."""
    saved = read_saved_splits(run_dir)
    if saved is None:
        raise CxrAgeError(f"{run_dir} has no split files (train.csv, val.csv, test.csv)")
    repeated = saved["image"][saved["image"].duplicated()]
    if len(repeated):
        raise CxrAgeError(f"{run_dir}: {len(repeated)} images are listed more than once in the split files "
                          f"(first: {repeated.iloc[0]})")
    try:
        check_disjoint(saved)
    except CxrAgeError as err:
        raise CxrAgeError(f"{run_dir}: {err}") from None


def check_same_split(run_dir: Path, frame: pd.DataFrame) -> None:
    """A resumed run's saved split must equal the split its data gives now (`frame` with `split`)."""
    saved = read_saved_splits(run_dir)
    if saved is None:
        return
    both = pd.concat([saved.set_index("image")["split"].rename("saved"),
                      frame.set_index("image")["split"].rename("now")], axis=1)
    changed = both.index[both["saved"].ne(both["now"])]
    if len(changed):
        raise CxrAgeError(f"the data no longer gives the split saved in {run_dir} ({len(changed)} images differ, "
                          f"first: {changed[0]}); resume with the same data, or start a new run")
