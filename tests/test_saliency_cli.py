"""`cxr-age-saliency` as a user runs it, on a real classifier run made by `cxr-age-train classify`."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_line_error, call_cli, run_cli

from cxr_age.cli.saliency import main
from cxr_age.io.ages import GROUP_LABELS
from cxr_age.run import Run
from cxr_age.tasks import CLASSIFY, REGRESS


@pytest.fixture(scope="module")
def run_dir(classify_run):
    folder, result = classify_run.run_dir, classify_run.result
    assert result.returncode == 0, result.stderr[-2000:]
    return folder


def _groups(run_dir, split):
    return pd.read_csv(run_dir / f"{split}.csv")["group"]


def test_one_group_writes_overlay_npy_and_json(run_dir, tmp_path, capsys):
    group = GROUP_LABELS[_groups(run_dir, "train").mode()[0]]
    out = tmp_path / "one"
    result = call_cli(main, "--run", str(run_dir), "--group", group, "--split", "train", "--out", str(out),
                      "--no-progress", capsys=capsys)
    assert result.returncode == 0, result.stderr[-2000:]
    settings = json.loads((out / "settings.json").read_text())
    counts = settings["groups"][group]
    assert counts["all"] == (_groups(run_dir, "train") == GROUP_LABELS.index(group)).sum()
    assert counts["correct"] + counts["wrong"] == counts["all"]
    assert settings["method"] == "saliency" and settings["versions"]["tf-keras-vis"] == "0.8.7"
    average = np.load(out / f"saliency_{group}.npy")
    assert average.shape == (64, 64) and 0 <= average.min() and average.max() <= 1
    assert (out / f"saliency_{group}.png").stat().st_size > 10_000
    assert len(pd.read_csv(out / "images.csv")) == counts["all"]
    regions = pd.read_csv(out / "regions.csv")
    shares = regions[regions["subset"] == "all"]["mass_share"]
    assert shares.sum() == pytest.approx(1.0)
    assert f"{group}: {counts['all']} images" in result.stdout
    assert "heart" in result.stdout and f"wrote {out}" in result.stdout
    assert_one_line_error(call_cli(main, "--run", str(run_dir), "--group", group, "--split", "train",
                                   "--out", str(out), capsys=capsys), "already exists")


@pytest.mark.long
def test_all_groups_grid_regions_and_sanity(run_dir, tmp_path):
    out = tmp_path / "all"
    result = run_cli("saliency", "--run", str(run_dir), "--split", "train", "--limit", "1", "--method", "gradcam",
                     "--sanity", "--sanity-images", "3", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("grid.png", "regions.png", "regions.csv", "sanity.csv", "sanity.png", "settings.json"):
        assert (out / name).is_file(), name
    settings = json.loads((out / "settings.json").read_text())
    assert settings["layer"] == "relu"
    assert all(counts["all"] == 1 for counts in settings["groups"].values())
    sanity = pd.read_csv(out / "sanity.csv")
    assert sanity["randomised_through"].tolist()[0] == "output layer"
    assert sanity["randomised_through"].tolist()[-1] == "stem"
    assert "sanity check (Adebayo et al. 2018)" in result.stdout
    assert "+ stem" in result.stdout and "gradcam: " in result.stdout
    regions = pd.read_csv(out / "regions.csv")
    assert regions["group"].nunique() == len(settings["groups"])


def test_default_run_is_the_newest_finished_classifier(run_dir, tmp_path):
    runs = tmp_path / "runs"
    assert Run.latest(CLASSIFY, runs) is None
    older = runs / "classify-old"
    shutil.copytree(run_dir, older, ignore=shutil.ignore_patterns("saliency"))
    unfinished = runs / "classify-unfinished"
    shutil.copytree(run_dir, unfinished, ignore=shutil.ignore_patterns("saliency", "metrics.json"))
    assert Run.latest(CLASSIFY, runs) == Run(older)
    assert Run.latest(REGRESS, runs) is None


def test_bad_requests_give_one_line(run_dir, tmp_path, capsys, monkeypatch):
    def saliency(*args):
        return call_cli(main, *args, capsys=capsys)

    monkeypatch.chdir(tmp_path)
    assert_one_line_error(saliency(), "no finished classify run under runs/", "cxr-age-train classify")
    assert_one_line_error(saliency("--group", "90-100"), "invalid choice: '90-100'")
    assert_one_line_error(saliency("--method", "deconvnet"), "invalid choice: 'deconvnet'")
    assert_one_line_error(saliency("--run", str(tmp_path / "none")), "run directory not found")
    assert_one_line_error(saliency("--run", str(tmp_path)), "holds no model.keras")
    assert_one_line_error(saliency("--run", str(run_dir), "--layer", "relu"), "--layer applies to the CAM methods")
    assert_one_line_error(saliency("--run", str(run_dir), "--tolerance", "-1"), "--tolerance")
    bad_regions = tmp_path / "regions.toml"
    bad_regions.write_text("[[region]]\nname = 'x'\n")
    assert_one_line_error(saliency("--run", str(run_dir), "--regions", str(bad_regions)), "list of [x, y] pairs")
    present = set(_groups(run_dir, "test"))
    absent = next(label for index, label in enumerate(GROUP_LABELS) if index not in present)
    assert_one_line_error(saliency("--run", str(run_dir), "--group", absent), f"has no images in age group(s) {absent}")
    assert not (run_dir / "saliency").exists(), "a refused request leaves no folder behind"


def test_a_model_file_with_code_is_refused(run_dir, tmp_path, capsys):
    import keras

    hostile = tmp_path / "hostile"
    shutil.copytree(run_dir, hostile, ignore=shutil.ignore_patterns("saliency"))
    image = keras.Input((64, 64, 1))
    keras.Model(image, keras.layers.Lambda(lambda x: x * 2)(image)).save(hostile / "model.keras")
    assert_one_line_error(call_cli(main, "--run", str(hostile), capsys=capsys),
                          "refused to load", "model.keras", "safe mode")
