"""A healthy reference (`--healthy-only`): each adapter's healthy label picks the rows; training and
validation keep the healthy images of the embedded sample, the test split keeps every patient and its error
is reported on the healthy and on the others; a table without findings is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_line_error, call_cli, run_cli

from cxr_age.cli import train
from cxr_age.config import Experiment
from cxr_age.errors import CxrAgeError
from cxr_age.io.healthy import healthy_mask
from cxr_age.io.metadata import read_table
from cxr_age.workflows.evaluation import mae_by_health
from cxr_age.workflows.training import prepare_data

TABLES = Path(__file__).parent / "fixtures" / "datasets"


@pytest.mark.parametrize("table, label", [
    (TABLES / "chexpert_train_rows.csv", "No Finding"),
    (TABLES / "padchest" / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", "normal"),
    (TABLES / "covid" / "metadata.csv", "No Finding"),
])
def test_each_adapter_says_who_is_healthy(table, label):
    frame = read_table(table).frame
    healthy = healthy_mask(frame.assign(dataset=read_table(table).dataset))
    listed = frame["findings"].str.split("|").map(lambda items: label in items)
    assert healthy.tolist() == listed.tolist()
    if table.name.startswith("chexpert"):
        assert 0 < healthy.sum() < len(frame)  # CheXpert's `No Finding` = 1 rows, and only those


def test_a_table_without_findings_is_refused_in_one_line(tmp_path, capsys):
    rsna = TABLES / "rsna_pneumonia_dicom_headers_rows.csv"
    result = call_cli(train.main, "regress", "--csv", str(rsna), "--healthy-only", "--out", str(tmp_path / "run"),
                      capsys=capsys)
    assert_one_line_error(result, "dicom-headers", "records no findings", "--healthy-only")
    assert not (tmp_path / "run").exists()
    plain = pd.DataFrame({"image": ["a.png", "b.png"], "age": [40, 50], "findings": ["", ""], "dataset": "csv"})
    with pytest.raises(CxrAgeError, match="all blank"):
        healthy_mask(plain)


def test_the_sample_trains_on_its_healthy_and_tests_on_everyone(tmp_path):
    """The splits of a healthy-only run on the embedded sample, as training writes them (no network)."""
    experiment = Experiment.load("demo", task="regress", image_size=32, healthy_only=True)
    prepare_data(experiment, tmp_path)
    parts = {split: pd.read_csv(tmp_path / f"{split}.csv", keep_default_na=False) for split in ("train", "val", "test")}
    assert (parts["train"]["findings"] == "No Finding").all() and (parts["val"]["findings"] == "No Finding").all()
    assert (parts["test"]["findings"] != "No Finding").any() and (parts["test"]["findings"] == "No Finding").any()
    counts = json.loads((tmp_path / "healthy.json").read_text())
    assert counts["train_kept"] == len(parts["train"]) and counts["train_removed"] > 0
    assert counts["test_healthy"] + counts["test_not_healthy"] == len(parts["test"])
    assert sum(len(p) for p in parts.values()) + counts["train_removed"] + counts["val_removed"] == 477


def test_the_error_is_reported_on_the_healthy_and_the_others():
    frame = pd.DataFrame({"patient_id": [str(i) for i in range(6)], "age": [30.0, 40, 50, 60, 70, 80],
                          "predicted_age": [32.0, 41, 45, 70, 70, 60], "dataset": "nih",
                          "findings": ["No Finding", "No Finding", "Mass", "Effusion|Mass", "No Finding", "Hernia"]})
    result = mae_by_health(frame, 50.0, seed=0)
    assert result["healthy"]["images"] == 3 and result["not_healthy"]["images"] == 3
    assert result["healthy"]["mae"]["value"] == pytest.approx(1.0)
    assert result["not_healthy"]["mae"]["value"] == pytest.approx(np.mean([5, 10, 20]))
    assert result["not_healthy"]["baseline_mae"] == pytest.approx(np.mean([0, 10, 30]))


@pytest.mark.long
def test_healthy_only_trains_on_the_demo_sample_and_says_how_many_rows_it_kept(tmp_path):
    """The command on the embedded sample (DenseNet121, 32 px, one epoch: about two minutes on 2 cores)."""
    result = run_cli("train", "regress", "--healthy-only", "--backbone", "densenet121", "--image-size", "32",
                     "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "healthy only: kept" in result.stdout and "not healthy: mae" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    health = metrics["splits"]["test"]["by_health"]
    assert health["healthy"]["images"] + health["not_healthy"]["images"] == metrics["splits"]["test"]["images"]
    assert "healthy_only = true" in (tmp_path / "run" / "config.toml").read_text()
