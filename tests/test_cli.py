"""The command-line tools run as a user runs them: a fresh process each (the checks of missing and undecodable
files and of a missing run call the same `main` in this process, which saves a TensorFlow start-up each),
real files, real exit codes."""

import json
import shutil

import pandas as pd
import pytest
from helpers import NIH_2017, NIH_2017_ROWS, assert_one_line_error, call_cli, run_cli
from test_metadata import PAPER_GROUP_COUNTS

from cxr_age.cli import data, evaluate, train
from cxr_age.paths import sample_image_dir


def test_stats_reproduces_the_nih_figures(tmp_path):
    result = run_cli("data", "stats", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cxr-age-data stats: using the shipped NIH ChestX-ray14 metadata table")
    assert "read 112,120 images of 30,805 patients" in lines
    assert "removed 32 images with age over 90" in lines
    assert any("patients in two splits: 0" in line for line in lines)
    table = pd.read_csv(tmp_path / "run" / "age_groups.csv").set_index("age_group")
    assert table.loc["0-10", "images_all"] == PAPER_GROUP_COUNTS[0] + 14  # age 0 joins the first group
    assert table["images_all"].iloc[1:9].tolist() == PAPER_GROUP_COUNTS[1:]
    assert table.loc["total", "images_all"] == 112_120 - 32
    assert (table[["images_train", "images_val", "images_test"]].sum(axis=1) == table["images_all"]).all()
    assert (tmp_path / "run" / "age_histogram.png").stat().st_size > 10_000
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["counts"]["removed_over_max_age"] == 32


@pytest.mark.parametrize("table, fragments", [
    (NIH_2017_ROWS, ("read 339 images of 303 patients", "removed 16 images: implausible age",
                     "removed 35 images with age over 90", "removed 108 images of views other than PA")),
    pytest.param(NIH_2017, ("read 112,120 images of 30,805 patients", "removed 16 images: implausible age",
                            "removed 35 images with age over 90", "images of views other than PA"),
                 marks=pytest.mark.shared),
], ids=["rows", "whole"])
def test_stats_on_the_2017_release_pa_only(tmp_path, table, fragments):
    result = run_cli("data", "stats", "--csv", str(table), "--view", "PA", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    for fragment in fragments:
        assert fragment in result.stdout


def test_split_writes_disjoint_csvs_from_the_embedded_sample(tmp_path):
    result = run_cli("data", "split", "--seed", "3", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "using the embedded demo sample" in result.stdout.splitlines()[0]
    parts = {name: pd.read_csv(tmp_path / "run" / f"{name}.csv") for name in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == 477
    assert abs(len(parts["train"]) / 477 - 0.8) < 0.02
    patients = [set(p["patient_id"]) for p in parts.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])


def test_run_directory_is_never_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "mine.txt").write_text("keep")
    assert_one_line_error(run_cli("data", "split", "--out", str(tmp_path / "run")), "already exists")
    assert (tmp_path / "run" / "mine.txt").read_text() == "keep"


def test_default_run_directories_are_fresh(tmp_path):
    first = run_cli("data", "split", cwd=tmp_path)
    second = run_cli("data", "split", cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert len(list((tmp_path / "runs").iterdir())) == 2


@pytest.fixture
def dataset(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    names = sorted(p.name for p in sample_image_dir().iterdir())[:6]
    for name in names:
        shutil.copy(sample_image_dir() / name, images / name)
    whole = (images / names[0]).read_bytes()
    (images / names[0]).write_bytes(whole[:1000])
    return tmp_path, names


def test_check_reports_undecodable_files(dataset, capsys):
    folder, names = dataset
    csv = folder / "labels.csv"
    pd.DataFrame({"image": names, "age": 40}).to_csv(csv, index=False)
    assert_one_line_error(call_cli(data.main, "check", "--csv", str(csv), capsys=capsys),
                          "1 of 6 image files cannot be decoded", names[0], "--skip-unreadable")
    result = call_cli(data.main, "check", "--csv", str(csv), "--skip-unreadable", "--out", str(folder / "run"),
                      capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert "5 images decode; left out: 0 missing, 1 undecodable" in result.stdout
    skipped = pd.read_csv(folder / "run" / "skipped.csv")
    assert skipped["image"].tolist() == [names[0]] and skipped["row"].tolist() == [2]


def test_check_reports_missing_files(dataset, capsys):
    folder, names = dataset
    csv = folder / "labels.csv"
    pd.DataFrame({"image": names[1:] + ["lost1.png", "lost2.png"], "age": 40}).to_csv(csv, index=False)
    assert_one_line_error(call_cli(data.main, "check", "--csv", str(csv), capsys=capsys),
                          "2 of 7 image files are missing", "lost1.png, lost2.png", "--skip-missing")
    result = call_cli(data.main, "check", "--csv", str(csv), "--skip-missing", "--out", str(folder / "run"),
                      capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert "left out: 2 missing, 0 undecodable" in result.stdout


@pytest.mark.parametrize(
    "body, fragments",
    [
        (b"image,sex\na.png,F\n", ["lacks the column(s) age", "it has: image, sex"]),
        (b"image,age\na.png,forty\nb.png,12\nc.png,-2\n", ["2 ages do not parse", "row 2 ('forty')", "row 4 ('-2')"]),
        (b"image,age,view\na.png,95,PA\n", ["no images left after filters"]),
        (b"image,age\n../../etc/passwd,40\n", ["row 2", "outside the image folder"]),
        (b"image,age\n\xff\xfe.png,40\n", ["not UTF-8"]),
        (b"", ["is empty"]),
    ],
)
def test_bad_tables_give_one_line(tmp_path, body, fragments):
    (tmp_path / "bad.csv").write_bytes(body)
    assert_one_line_error(run_cli("data", "split", "--csv", str(tmp_path / "bad.csv")), *fragments)


def test_bad_flags_give_one_line(tmp_path):
    assert_one_line_error(run_cli("data", "stats", "--view", "LL"), "invalid choice: 'LL'")
    assert_one_line_error(run_cli("data", "stats", "--csv", str(tmp_path / "none.csv")), "CSV file not found")
    assert_one_line_error(run_cli("data", "stats", "--max-age", "-3"), "--max-age must be positive")


def test_module_entry_point_lists_commands():
    result = run_cli()
    assert result.returncode == 2 and "data,train,evaluate,saliency" in result.stderr


def test_train_classify_then_evaluate(classify_run, capsys):
    run_dir, csv, result = classify_run.run_dir, classify_run.csv, classify_run.result
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0].startswith(f"cxr-age-train classify: using csv table {csv} (detected")
    assert "baseline = training majority group" in result.stdout
    for name in ("config.toml", "model.keras", "history.csv", "metrics.json", "predictions_val.csv",
                 "predictions_test.csv", "roc_test.png", "confusion_test.png", "loss_curves.png"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["splits"]["test"]["per_group"]) >= {"0-10", "80-90"}
    assert "[train]" in (run_dir / "config.toml").read_text()
    again = call_cli(evaluate.main, str(run_dir), "--split", "test", "--coverage", "0.8", capsys=capsys)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "macro_auc" in again.stdout and "val:" not in again.stdout
    assert "80% prediction sets cover" in again.stdout  # calibrated on the saved val predictions
    assert_one_line_error(call_cli(train.main, "classify", "--csv", str(csv), "--out", str(run_dir), capsys=capsys),
                          "already exists")


def test_evaluate_needs_a_run(tmp_path, capsys):
    assert_one_line_error(call_cli(evaluate.main, str(tmp_path / "nowhere"), capsys=capsys), "run directory not found")
    assert_one_line_error(call_cli(evaluate.main, str(tmp_path), capsys=capsys), "holds no model.keras")


def test_training_run_dir_resumes_only_unfinished_runs_of_the_same_settings(tmp_path, monkeypatch):
    from cxr_age.config import Experiment, to_toml
    from cxr_age.run import Run

    monkeypatch.chdir(tmp_path)
    demo, other_settings = Experiment.load("demo", task="regress"), Experiment.load("demo", task="regress", epochs=9)
    first, resumed = Run.for_training(demo, None)
    assert not resumed and first.folder.parent.name == "runs"
    (first / "config.toml").write_text(to_toml(demo))
    assert Run.for_training(demo, None) == (first, True)
    other, resumed = Run.for_training(other_settings, None)
    assert other != first and not resumed
    (first / "metrics.json").write_text("{}")
    fresh, resumed = Run.for_training(demo, None)
    assert fresh.folder == first.folder.with_name(first.name + "-2") and not resumed
