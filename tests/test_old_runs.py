"""A run folder made before the package was laid out in layers still loads, evaluates and predicts: the
file names and formats of a run are a contract with every run users already have. The fixture holds such a
run's files as they were written (no manifest); its model file is rebuilt from the saved settings, since
the model file's format is Keras's, not ours."""

import json
import shutil

import pandas as pd
import pytest
from helpers import FIXTURES, call_cli

from cxr_age.age_model import AgeModel
from cxr_age.cli import evaluate, predict
from cxr_age.config import load_experiment
from cxr_age.nets.densenet import NetworkOptions, build_model
from cxr_age.paths import sample_image_dir
from cxr_age.run import Run
from cxr_age.stats.conformal import AgeIntervals

WRITTEN_FROM = "/work/main/data/sample/images"  # where the images were when the run was made


@pytest.fixture(scope="module")
def old_run(tmp_path_factory) -> Run:
    folder = tmp_path_factory.mktemp("old") / "run"
    shutil.copytree(FIXTURES / "old-run", folder)
    for split in ("train", "val", "test"):
        path = folder / f"{split}.csv"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame["path"] = frame["path"].str.replace(WRITTEN_FROM, str(sample_image_dir()), regex=False)
        frame.to_csv(path, index=False)
    experiment = load_experiment(folder / "config.toml")
    settings = experiment.train
    network = build_model(experiment.task.head, settings.backbone, experiment.data.image_size,
                          options=NetworkOptions(bn_momentum=settings.bn_momentum))
    network.save(folder / "model.keras")
    return Run(folder)


def test_an_old_run_opens_with_what_it_holds(old_run):
    assert not old_run.file(Run.MANIFEST).exists()
    run = Run.open(old_run)
    assert run.task.name == "regress" and run.experiment.data.image_size == 32
    assert run.metrics()["splits"]["test"]["images"] == len(run.split("test"))
    assert isinstance(run.uncertainty(), AgeIntervals)
    manifest = run.manifest()
    assert manifest["task"] == "regress" and manifest["files"]["model"] == Run.MODEL
    assert {"config", "metrics", "conformal", "split_train", "split_val", "split_test"} <= set(manifest["files"])


def test_an_old_run_loads_and_predicts_with_its_intervals(old_run):
    model = AgeModel.load(old_run)
    assert model.task.name == "regress" and model.demo
    frame = model.predict(str(sample_image_dir() / "00000075_000.png"))
    row = frame.iloc[0]
    assert 0 <= row["predicted_age"] <= 90 and row["interval_low"] <= row["predicted_age"] <= row["interval_high"]


def test_an_old_run_evaluates_and_predicts_by_command(old_run, capsys):
    result = call_cli(evaluate.main, str(old_run), capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert "test:" in result.stdout and "baseline" in result.stdout
    metrics = json.loads(old_run.file(Run.METRICS).read_text())
    assert metrics["task"] == "regress" and set(metrics["splits"]) == {"val", "test"}
    assert json.loads(old_run.file(Run.MANIFEST).read_text())["format"] == 1  # evaluating adds the manifest
    image = sample_image_dir() / "00000924_000.png"
    result = call_cli(predict.main, str(image), "--run", str(old_run), "--no-progress", capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert f"{image}: " in result.stdout and "interval" in result.stdout
