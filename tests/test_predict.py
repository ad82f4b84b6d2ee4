"""`cxr-age-predict`: the same ages as the run's own evaluation, PNG and DICOM alike, group probabilities
from a classifier run, saliency overlays that never overwrite, no patient identifier in any output, and
bad input as one line or a counted skip."""

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from dicoms import PATIENT_ID, PATIENT_NAME, write_dicom
from helpers import assert_one_line_error, call_cli

from cxr_age.age_model import AgeModel
from cxr_age.cli import predict
from cxr_age.config import DataConfig, Experiment, TrainConfig
from cxr_age.io.ages import GROUP_LABELS
from cxr_age.io.decode import read_image
from cxr_age.nets.densenet import build_model
from cxr_age.paths import sample_image_dir
from cxr_age.tasks import CLASSIFY
from cxr_age.workflows.prediction import Predicting, predict_batches


def test_an_age_for_a_real_sample_png(phantom_run, capsys):
    run_dir, _ = phantom_run
    image = sample_image_dir() / "00000075_000.png"
    result = call_cli(predict.main, str(image), "--run", str(run_dir), "--no-progress", capsys=capsys)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith(str(image)))
    age = float(line.split(": ")[1].split(" years")[0])
    assert 0 <= age <= 90
    assert "test mae" in result.stdout and "baseline" in result.stdout


def test_test_time_spread_for_every_image_beside_the_interval(phantom_run, capsys, tmp_path):
    """`--tta 4 --json`: each image's mean and SD over four views, beside its own age and conformal interval;
    `--csv` records the setting, so a file made without the spread is not resumed with it."""
    run_dir, _ = phantom_run
    images = sorted((run_dir.parent / "images").glob("*.png"))[:5]
    result = call_cli(predict.main, *map(str, images), "--run", str(run_dir), "--tta", "4", "--json", "--no-progress",
                      capsys=capsys)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["predictions"]
    assert len(rows) == 5
    # the phantoms' age lives in one fixed patch, which a shift or zoom moves: their spread is large (the
    # library's own figures are compared across both engines in test_bundle)
    for row in rows:
        assert row["tta_views"] == 4 and row["tta_sd"] > 0 and "interval_low" in row
        assert 0 <= row["tta_mean_age"] <= 100
    csv = tmp_path / "spread.csv"
    text = call_cli(predict.main, str(images[0]), "--run", str(run_dir), "--tta", "3", "--csv", str(csv),
                    "--no-progress", capsys=capsys)
    assert "test-time spread sd" in text.stdout and "3 views" in text.stdout
    assert "tta_sd" in pd.read_csv(csv).columns
    again = call_cli(predict.main, str(images[0]), "--run", str(run_dir), "--csv", str(csv), "--no-progress",
                     capsys=capsys)  # refused before any model is loaded
    assert_one_line_error(again, "other settings", "tta")


def test_same_ages_as_the_runs_evaluation_with_group_probabilities(phantom_run, classify_run, tmp_path, capsys):
    run_dir, _ = phantom_run
    evaluated = pd.read_csv(run_dir / "predictions_test.csv").iloc[:5]
    folder = tmp_path / "studies"
    folder.mkdir()
    for path in evaluated["image"]:
        shutil.copy(run_dir.parent / "images" / path, folder)
    (folder / "README.txt").write_text("not an image")
    result = call_cli(predict.main, str(folder), "--run", str(run_dir), "--classify-run", str(classify_run[0]),
                      "--json", "--no-progress", "--read-threads", "1", capsys=capsys)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    predicted = {row["file"].split("/")[-1]: row for row in output["predictions"]}
    for name, age in zip(evaluated["image"], evaluated["predicted_age"]):
        assert predicted[name]["predicted_age"] == pytest.approx(age, abs=0.01)
        probabilities = [predicted[name][f"p_{label}"] for label in GROUP_LABELS]
        assert sum(probabilities) == pytest.approx(1, abs=1e-4)
        assert predicted[name]["predicted_group"] == GROUP_LABELS[int(np.argmax(probabilities))]
    assert output["skipped"] == [{"file": str(folder / "README.txt"), "reason": output["skipped"][0]["reason"]}]
    assert output["regressor"]["test_mae"]["baseline"] > output["regressor"]["test_mae"]["value"]
    assert "1 non-image files ignored" in result.stderr


def test_a_classifier_of_another_size_reads_the_files_at_its_own_size(phantom_run):
    run_dir, _ = phantom_run
    regressor = AgeModel.load(run_dir)
    config = Experiment(data=DataConfig(image_size=32), train=TrainConfig(task="classify"))
    classifier = AgeModel(run_dir, config, build_model(CLASSIFY.head, "densenet121", 32))
    files = sorted((run_dir.parent / "images").glob("*.png"))[:3]
    (batch,) = predict_batches(files, regressor, classifier, Predicting(batch_size=8, progress=False))
    assert batch.images.shape == (3, regressor.image_size, regressor.image_size, 1)
    expected = classifier.outputs(np.stack([read_image(path, 32) for path in files]))
    for row, probabilities in zip(batch.rows, expected):
        assert [row[f"p_{label}"] for label in GROUP_LABELS] == pytest.approx(probabilities.tolist(), abs=1e-6)


@pytest.fixture
def studies(phantom_run, tmp_path):
    """One phantom as PNG, as MONOCHROME2 DICOM and as MONOCHROME1 DICOM (identifiers in the headers)."""
    run_dir, _ = phantom_run
    pixels = cv2.imread(str(run_dir.parent / "images" / "phantom0000.png"), cv2.IMREAD_GRAYSCALE)
    pixels[0, 0], pixels[0, 1] = 0, 255  # the full 8-bit range, so the DICOM value-range stretch is x / 255
    folder = tmp_path / "studies"
    folder.mkdir()
    cv2.imwrite(str(folder / "study.png"), pixels)
    write_dicom(folder / "study2.dcm", pixels.astype(np.uint16), bits=8)
    write_dicom(folder / "study1", 255 - pixels.astype(np.uint16), photometric="MONOCHROME1", bits=8)
    return folder


def test_png_and_both_dicom_photometrics_give_one_age(phantom_run, studies, tmp_path, capsys):
    run_dir, _ = phantom_run
    table = tmp_path / "out" / "ages.csv"
    table.parent.mkdir()
    result = call_cli(predict.main, str(studies), "--run", str(run_dir), "--csv", str(table), "--saliency",
                      "--no-progress", capsys=capsys)
    assert result.returncode == 0, result.stderr
    ages = pd.read_csv(table).set_index("file")["predicted_age"]
    assert len(ages) == 3
    assert ages.max() - ages.min() < 0.01, ages
    overlays = sorted(p.name for p in table.parent.glob("*_saliency.png"))
    assert overlays == ["study1_saliency.png", "study2_saliency.png", "study_saliency.png"]
    for text in [result.stdout, result.stderr, table.read_text()]:
        assert PATIENT_NAME not in text and PATIENT_ID not in text and "Doe" not in text


def test_overlays_never_overwrite(phantom_run, studies, tmp_path, capsys):
    run_dir, _ = phantom_run
    overlays = tmp_path / "overlays"
    overlays.mkdir()
    (overlays / "study_saliency.png").write_bytes(b"mine")
    result = call_cli(predict.main, str(studies / "study.png"), "--run", str(run_dir), "--saliency",
                      "--overlay-dir", str(overlays), "--no-progress", capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert (overlays / "study_saliency.png").read_bytes() == b"mine"
    assert cv2.imread(str(overlays / "study_saliency-2.png")) is not None


def test_unreadable_files_are_skipped_and_listed(phantom_run, studies, tmp_path, capsys):
    run_dir, _ = phantom_run
    (studies / "empty.png").write_bytes(b"")
    (studies / "text.png").write_text("not a picture")
    write_dicom(studies / "cine.dcm", np.zeros((2, 8, 8), np.uint16))
    table = tmp_path / "ages.csv"
    result = call_cli(predict.main, str(studies), "--run", str(run_dir), "--csv", str(table), "--no-progress",
                      capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(table)) == 3
    skipped = pd.read_csv(tmp_path / "ages_skipped.csv")
    assert sorted(name.split("/")[-1] for name in skipped["file"]) == ["cine.dcm", "empty.png", "text.png"]
    assert "holds 2 frames" in " ".join(skipped["reason"])
    assert "3 unreadable skipped" in result.stdout


@pytest.mark.parametrize("args, fragments", [
    (["missing.png"], ["missing.png", "no such file"]),
    (["empty.png"], ["empty.png: ", "empty"]),
    (["cine.dcm"], ["cine.dcm", "holds 2 frames"]),
    (["ok.png", "--csv", "taken.csv"], ["taken.csv", "already exists"]),
    (["ok.png", "--run", "CLASSIFY"], ["is a classify run", "--classify-run"]),
    (["ok.png", "--json", "--csv", "x.csv"], ["not allowed with argument"]),
    (["ok.png", "--read-threads", "0"], ["--read-threads", "0"]),
    (["ok.png", "--tta", "1"], ["--tta", "from 2 to 8"]),
    (["ok.png", "--tta", "9"], ["--tta", "from 2 to 8"]),
], ids=["missing", "empty", "multi-frame", "csv-exists", "wrong-task", "json-and-csv", "no-threads", "one-view",
        "too-many-views"])
def test_bad_requests_give_one_line(phantom_run, classify_run, tmp_path, monkeypatch, capsys, args, fragments):
    run_dir, _ = phantom_run
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    write_dicom(tmp_path / "cine.dcm", np.zeros((2, 8, 8), np.uint16))
    shutil.copy(sample_image_dir() / "00000075_000.png", tmp_path / "ok.png")
    (tmp_path / "taken.csv").write_text("mine")
    args = [str(classify_run[0]) if arg == "CLASSIFY" else arg for arg in args]
    if "--run" not in args:
        args += ["--run", str(run_dir)]
    assert_one_line_error(call_cli(predict.main, *args, "--no-progress", capsys=capsys), *fragments)
    assert (tmp_path / "taken.csv").read_text() == "mine"


def test_no_regress_run_names_the_command_to_train_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(sample_image_dir() / "00000075_000.png", tmp_path / "ok.png")
    assert_one_line_error(call_cli(predict.main, "ok.png", capsys=capsys), "cxr-age-train regress")
