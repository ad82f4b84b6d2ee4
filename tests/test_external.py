"""External validation and training on several datasets, with real models: the phantom regressor judged on
new phantoms laid out as CheXpert, and a small regressor trained on two datasets at once."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import call_cli, write_bar_images
from phantoms import phantom

from cxr_age.cli import evaluate
from cxr_age.config import DataConfig, Experiment, TrainConfig
from cxr_age.io.datasets.chexpert import LABELS
from cxr_age.tasks import REGRESS
from cxr_age.workflows.evaluation import summary_lines
from cxr_age.workflows.report import build_report
from cxr_age.workflows.training import train


def write_chexpert_phantoms(root, patients: int = 24, seed: int = 11):
    """Phantoms in CheXpert's layout (`CheXpert-v1.0-small/valid.csv`, JPEG files in patient folders): two
    studies for every third patient, a lateral view and an age of 90 ("90 or older") to be left out."""
    rng = np.random.default_rng(seed)
    folder = root / "CheXpert-v1.0-small"
    rows = []
    for p in range(patients):
        age = float(rng.integers(20, 89))
        for study in range(1, 3 if p % 3 == 0 else 2):
            path = f"CheXpert-v1.0-small/valid/patient{64541 + p}/study{study}/view1_frontal.jpg"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / path), (phantom(age, rng) * 255).round().astype(np.uint8),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            rows.append({"Path": path, "Sex": rng.choice(["Male", "Female"]), "Age": int(age),
                         "Frontal/Lateral": "Frontal", "AP/PA": rng.choice(["AP", "PA"]),
                         "Cardiomegaly": rng.choice(["1.0", "0.0", "-1.0", ""])})
    rows.append({**rows[0], "Path": rows[0]["Path"].replace("view1_frontal", "view2_lateral"),
                 "Frontal/Lateral": "Lateral", "AP/PA": ""})
    rows.append({**rows[0], "Path": rows[0]["Path"].replace("study1", "study9"), "Age": 90})
    table = pd.DataFrame(rows, columns=["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *LABELS], dtype=object)
    table = table.fillna("")
    table.to_csv(folder / "valid.csv", index=False)
    return folder / "valid.csv"


def test_external_validation_on_a_second_dataset(phantom_run, tmp_path, capsys):
    run_dir, _ = phantom_run
    table = write_chexpert_phantoms(tmp_path)
    result = call_cli(evaluate.main, str(run_dir), "--csv", str(table), capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert "chexpert table" in result.stdout and "(detected from its columns)" in result.stdout
    assert "trained on csv, tested on chexpert" in result.stdout
    assert "removed 1 images: lateral view" in result.stdout and "removed 1 images: age censored" in result.stdout
    (folder,) = (run_dir / "external").glob("chexpert-*")
    metrics = json.loads((folder / "metrics.json").read_text())
    external = metrics["splits"]["external"]
    assert external["images"] == 32 and external["patients"] == 24
    mae = external["model"]["mae"]
    assert mae["ci95"][0] <= mae["value"] <= mae["ci95"][1]
    assert mae["value"] < external["baseline"]["mae"]  # the phantom's age patch survives JPEG and another table
    assert external["baseline"]["predicts"].startswith("training median age")  # the run's, not refitted here
    assert {"per_group", "per_view", "per_sex"} <= set(external)
    assert set(external["per_view"]) == {"AP", "PA"} and set(external["per_sex"]) == {"M", "F"}
    coverage = metrics["uncertainty"]["coverage"]
    assert 0 <= coverage["ci95"][0] <= coverage["value"] <= coverage["ci95"][1] <= 1
    gap = json.loads((folder / "age_gap.json").read_text())
    assert gap["correction"]["fitted_on"] == "val" and gap["external"]["images"] == 32
    predictions = pd.read_csv(folder / "predictions_external.csv")
    assert len(predictions) == 32 and {"interval_low", "interval_high"} <= set(predictions)
    assert len(pd.read_csv(folder / "removed.csv")) == 2
    for name in ("predicted_vs_true_external.png", "coverage_by_age_external.png", "bland_altman_external.png"):
        assert (folder / name).stat().st_size > 5_000, name
    page = build_report(run_dir)
    assert "External validation" in page and "own test split</td>" in page
    assert f"<td>{folder.name}</td>" in page and "<td>chexpert</td>" in page


def test_external_validation_refuses_own_split_flags(phantom_run, tmp_path, capsys):
    result = call_cli(evaluate.main, str(phantom_run[0]), "--csv", str(tmp_path / "x.csv"), "--age-gap",
                      capsys=capsys)
    assert result.returncode == 2 and "--split and --age-gap are for the run's own splits" in result.stderr


def _covid_table(images_csv):
    """The bar images of `write_bar_images` listed in the COVID-19 collection's layout."""
    labels = pd.read_csv(images_csv)
    table = pd.DataFrame({"patientid": [f"c{i // 2}" for i in range(len(labels))], "offset": 0, "sex": "F",
                          "age": labels["age"], "finding": "Pneumonia", "view": "PA", "modality": "X-ray",
                          "folder": "images", "filename": labels["image"]})
    table.to_csv(images_csv.parent / "metadata.csv", index=False)
    return images_csv.parent / "metadata.csv"


@pytest.mark.long
def test_training_on_two_datasets_reports_each_and_pooled(tmp_path):
    first = write_bar_images(tmp_path / "a" / "images", 30, seed=1)
    second = _covid_table(write_bar_images(tmp_path / "b" / "images", 30, seed=2))
    experiment = Experiment(
        name="two", data=DataConfig(csv=[str(first), str(second)], image_size=32),
        train=TrainConfig(task="regress", backbone="densenet121", loss="mse", epochs=1, batch_size=8))
    run_dir = train(experiment, tmp_path / "run")
    splits = {name: pd.read_csv(run_dir / f"{name}.csv") for name in ("train", "val", "test")}
    for frame in splits.values():
        assert set(frame["dataset"]) == {"csv", "covid"}  # every split holds both datasets
    patients = [set(frame["patient_id"]) for frame in splits.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["splits"]["test"]
    assert set(test["per_dataset"]) == {"csv", "covid"}
    assert sum(level["images"] for level in test["per_dataset"].values()) == test["images"]
    assert any(line.strip().startswith("covid: mae") for line in summary_lines(metrics, REGRESS))
    assert "csv" in (run_dir / "config.toml").read_text().split("[data]")[1]
