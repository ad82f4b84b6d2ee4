import numpy as np
import pandas as pd
import pytest
from helpers import NIH_2020

from cxr_age.errors import CxrAgeError
from cxr_age.io.metadata import read_table
from cxr_age.io.splits import check_disjoint, split_by_patient, split_from_nih_lists


@pytest.fixture(scope="module")
def nih():
    frame = read_table(NIH_2020).frame
    return frame[frame["age"] <= 90].reset_index(drop=True)


@pytest.fixture(scope="module")
def nih_split(nih):
    return split_by_patient(nih, seed=0)


def test_no_patient_in_two_splits(nih, nih_split):
    assert (nih.assign(split=nih_split).groupby("patient_id")["split"].nunique() == 1).all()
    assert check_disjoint(nih.assign(split=nih_split)) == 0


def test_near_80_10_10_overall_and_per_age_group(nih, nih_split):
    shares = nih_split.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.002)
    assert shares["val"] == pytest.approx(0.1, abs=0.002)
    assert shares["test"] == pytest.approx(0.1, abs=0.002)
    per_group = pd.crosstab(nih["group"], nih_split, normalize="index")
    assert (per_group["train"] - 0.8).abs().max() < 0.03
    assert ((per_group[["val", "test"]] - 0.1).abs() < 0.03).all().all()


def test_seeded_and_reproducible(nih, nih_split):
    again = split_by_patient(nih, seed=0)
    assert (again == nih_split).all()
    other = split_by_patient(nih, seed=1)
    assert (other != nih_split).mean() > 0.05


def test_overlap_fails_loudly():
    frame = pd.DataFrame({"patient_id": ["1", "1", "2", "3"], "split": ["train", "test", "val", "train"]})
    with pytest.raises(CxrAgeError, match=r"1 patients are in more than one split \(first: 1\)"):
        check_disjoint(frame)


def test_nih_official_lists(tmp_path):
    frame = pd.DataFrame({
        "image": [f"{p:08d}_{i:03d}.png" for p in range(1, 41) for i in range(3)],
        "patient_id": [str(p) for p in range(1, 41) for _ in range(3)],
        "age": np.repeat(np.linspace(5, 85, 40), 3),
    })
    test_images = frame["image"][frame["patient_id"].astype(int) > 32]
    (tmp_path / "test_list.txt").write_text("\n".join(test_images) + "\n")
    (tmp_path / "train_val_list.txt").write_text("\n".join(frame["image"][~frame["image"].isin(test_images)]))
    split = split_from_nih_lists(frame, tmp_path)
    assert set(frame["image"][split == "test"]) == set(test_images)
    assert set(split[split != "test"]) == {"train", "val"}
    assert check_disjoint(frame.assign(split=split)) == 0


def test_nih_lists_must_cover_every_image(tmp_path):
    frame = pd.DataFrame({"image": ["a.png", "b.png"], "patient_id": ["1", "2"], "age": [30.0, 40.0]})
    (tmp_path / "test_list.txt").write_text("a.png\n")
    (tmp_path / "train_val_list.txt").write_text("")
    with pytest.raises(CxrAgeError, match=r"1 images are in neither NIH list .*b.png"):
        split_from_nih_lists(frame, tmp_path)
    with pytest.raises(CxrAgeError, match="NIH split list not found"):
        split_from_nih_lists(frame, tmp_path / "missing")

