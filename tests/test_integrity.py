"""The split integrity check at the start of training and evaluation: leaks and changed data stop a run."""

import shutil

import pandas as pd
import pytest
from helpers import assert_one_line_error, call_cli, write_bar_images

from cxr_age.cli.evaluate import main as evaluate_main
from cxr_age.config import DataConfig, Experiment, TrainConfig
from cxr_age.errors import CxrAgeError
from cxr_age.run import Run
from cxr_age.workflows.training import prepare_data


def _write_splits(folder, rows):
    frame = pd.DataFrame(rows, columns=["image", "patient_id", "split"])
    for split in ("train", "val", "test"):
        frame[frame["split"] == split].drop(columns="split").to_csv(folder / f"{split}.csv", index=False)


def test_saved_splits_must_keep_patients_and_images_apart(tmp_path):
    _write_splits(tmp_path, [("a.png", "1", "train"), ("b.png", "2", "val"), ("c.png", "3", "test")])
    Run(tmp_path).check_splits()
    _write_splits(tmp_path, [("a.png", "1", "train"), ("b.png", "1", "val"), ("c.png", "3", "test")])
    with pytest.raises(CxrAgeError, match="1 patients are in more than one split"):
        Run(tmp_path).check_splits()
    _write_splits(tmp_path, [("a.png", "1", "train"), ("a.png", "1", "train"), ("c.png", "3", "test")])
    with pytest.raises(CxrAgeError, match="listed more than once"):
        Run(tmp_path).check_splits()
    (tmp_path / "val.csv").unlink()
    with pytest.raises(CxrAgeError, match="missing its val.csv"):
        Run(tmp_path).check_splits()


def test_a_resumed_run_needs_the_same_split(tmp_path):
    _write_splits(tmp_path, [("a.png", "1", "train"), ("b.png", "2", "val"), ("c.png", "3", "test")])
    same = pd.DataFrame({"image": ["c.png", "a.png", "b.png"], "split": ["test", "train", "val"]})
    Run(tmp_path).check_same_split(same)
    with pytest.raises(CxrAgeError, match="2 images differ"):
        Run(tmp_path).check_same_split(same.assign(split=["test", "val", "train"]))
    with pytest.raises(CxrAgeError, match="1 images differ, first: c.png"):
        Run(tmp_path).check_same_split(same.iloc[1:])


def test_training_stops_when_its_data_changed(tmp_path):
    csv = write_bar_images(tmp_path / "images", 40)
    config = Experiment(name="test", data=DataConfig(csv=str(csv), image_size=64),
                        train=TrainConfig(task="regress", backbone="densenet121", loss="mse"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    prepare_data(config, run_dir)
    prepare_data(config, run_dir)
    pd.read_csv(csv).iloc[:-3].to_csv(csv, index=False)
    with pytest.raises(CxrAgeError, match="the data no longer gives the split saved in"):
        prepare_data(config, run_dir)


def test_evaluation_stops_on_a_leaky_split(classify_run, tmp_path, capsys):
    leaky = tmp_path / "leaky"
    shutil.copytree(classify_run[0], leaky, ignore=shutil.ignore_patterns("saliency"))
    train = pd.read_csv(leaky / "train.csv", dtype={"patient_id": str})
    test = pd.read_csv(leaky / "test.csv", dtype={"patient_id": str})
    test.loc[0, "patient_id"] = train.loc[0, "patient_id"]
    test.to_csv(leaky / "test.csv", index=False)
    assert_one_line_error(call_cli(evaluate_main, str(leaky), capsys=capsys),
                          "1 patients are in more than one split", train.loc[0, "patient_id"])
