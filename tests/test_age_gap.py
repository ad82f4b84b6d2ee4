"""Age gap: the validation-fitted correction removes the age trend that regression toward the mean puts into
the raw gap; tables by finding, sex and view keep every level with its counts; the command writes its files."""

import json

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_line_error, call_cli

from cxr_age.cli import evaluate
from cxr_age.stats.age_gap import FINDINGS, NOT_RECORDED, facet_table, fit_correction, with_gaps


def shrunk_predictions(n: int, seed: int) -> pd.DataFrame:
    """Predictions pulled toward the mean age (slope 0.6), as a model trained with MSE does."""
    rng = np.random.default_rng(seed)
    ages = rng.uniform(5, 90, n)
    return pd.DataFrame({"age": ages, "predicted_age": 20 + 0.6 * ages + rng.normal(0, 4, n),
                         "patient_id": [f"p{i // 2}" for i in range(n)],
                         "findings": rng.choice(["No Finding", "Effusion|Mass", "Hernia", ""], n),
                         "sex": rng.choice(["M", "F"], n), "view": rng.choice(["PA", "AP"], n)})


def test_correction_removes_the_age_trend_of_the_gap():
    correction = fit_correction(shrunk_predictions(400, seed=0))
    assert correction.slope == pytest.approx(-0.4, abs=0.05)
    test = with_gaps(shrunk_predictions(400, seed=1), correction)
    raw = np.corrcoef(test["age"], test["gap"])[0, 1]
    corrected = np.corrcoef(test["age"], test["corrected_gap"])[0, 1]
    assert raw < -0.8 and abs(corrected) < 0.1, (raw, corrected)


def test_finding_table_keeps_every_label_and_counts_multi_label_images_in_each():
    frame = with_gaps(shrunk_predictions(200, seed=2), fit_correction(shrunk_predictions(200, seed=3)))
    table = facet_table(frame, "finding").set_index("level")
    assert list(table.index) == [*FINDINGS, NOT_RECORDED]
    both = frame["findings"] == "Effusion|Mass"
    assert table.loc["Effusion", "images"] == table.loc["Mass", "images"] == both.sum()
    assert table.loc["Mass", "patients"] == frame.loc[both, "patient_id"].nunique()
    assert table.loc["Mass", "mean_gap"] == pytest.approx(frame.loc[both, "gap"].mean())
    assert table.loc["Atelectasis", "images"] == 0
    assert table.loc["Mass", "corrected_gap_ci95_low"] < table.loc["Mass", "mean_corrected_gap"] \
        < table.loc["Mass", "corrected_gap_ci95_high"]


def test_one_patient_gets_no_interval():
    frame = with_gaps(shrunk_predictions(20, seed=4), fit_correction(shrunk_predictions(50, seed=5)))
    frame["sex"] = ["X"] + ["M"] * 19
    row = facet_table(frame, "sex").set_index("level").loc["X"]
    assert row["patients"] == 1 and np.isnan(row["corrected_gap_ci95_low"])


def test_evaluate_writes_the_age_gap_of_a_regress_run(phantom_run, capsys):
    run_dir, _ = phantom_run
    result = call_cli(evaluate.main, str(run_dir), "--age-gap", capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert "corrected gap" in result.stdout and "by finding" in result.stdout
    summary = json.loads((run_dir / "age_gap.json").read_text())
    assert summary["correction"]["fitted_on"] == "val"
    assert summary["test"]["images"] == len(pd.read_csv(run_dir / "test.csv"))
    findings = pd.read_csv(run_dir / "age_gap_by_finding.csv", keep_default_na=False)
    assert findings["level"].tolist()[:len(FINDINGS)] == list(FINDINGS)
    assert set(pd.read_csv(run_dir / "age_gap_by_view.csv")["level"]) == {"AP", "PA"}
    for name in ("age_gap_test.csv", "age_gap_by_sex.csv", "bland_altman_test.png", "age_gap_vs_age_test.png",
                 "age_gap_by_finding_test.png"):
        assert (run_dir / name).stat().st_size > 0, name


def test_age_gap_needs_a_regress_run_and_both_splits(phantom_run, classify_run, capsys):
    assert_one_line_error(call_cli(evaluate.main, str(classify_run[0]), "--age-gap", capsys=capsys),
                          "classify run", "--age-gap")
    assert_one_line_error(call_cli(evaluate.main, str(phantom_run[0]), "--age-gap", "--split", "test",
                                   capsys=capsys), "--split")
