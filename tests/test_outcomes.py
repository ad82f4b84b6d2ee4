"""`cxr-age-outcomes`: the age gap as a biomarker. Simulated cohorts with a known hazard (or odds) ratio per
year of gap recover it and a null cohort does not reject 1; the reported ratios are lifelines' and
statsmodels' own fits; the COVID-19 collection's real outcome table (Y/N/?/blank, several images per patient)
gives an adjusted odds ratio with its warnings; bad input ends in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
from outcome_cohorts import simulate, write_cohort

from cxr_age.cli.outcomes import main as outcomes_main
from cxr_age.stats.outcome_fits import OutcomeColumns
from cxr_age.stats.outcomes import OutcomeSettings, analyse_gap, build_design
from cxr_age.workflows.outcome_inputs import OutcomeQuestion, join_outcomes, read_predictions

pytest.importorskip("lifelines")
COVID = Path(__file__).parent / "fixtures" / "datasets" / "covid_outcome_rows.csv"
COX_OUTCOME = OutcomeColumns(time="time", event="event")


class Said(NamedTuple):
    code: int
    out: str
    err: str


def _command(capsys, *args: object) -> Said:
    code = outcomes_main(["--no-progress", *map(str, args)])
    captured = capsys.readouterr()
    return Said(code, captured.out, captured.err)


def test_a_true_hazard_ratio_of_1_05_is_covered_and_1_is_excluded(tmp_path, capsys):
    """The issue's criterion, through the command: 2,000 patients, HR 1.05 per year of gap adjusted for age
    and sex."""
    predictions, table = write_cohort(simulate(2000, 1.05, seed=0), tmp_path / "in", ["time", "event"])
    result = _command(capsys, predictions, "--outcomes", table, "--time", "time", "--event", "event",
                      "--bootstrap", 8, "--out", tmp_path / "out")
    assert result.code == 0, result.err
    summary = json.loads((tmp_path / "out" / "outcomes.json").read_text())
    gap = summary["gap"]
    assert gap["per"] == "year" and summary["model"] == "cox"
    assert gap["low"] <= 1.05 <= gap["high"] and gap["low"] > 1
    assert summary["n"] == summary["patients"] == 2000 and 0 < summary["events"] < 2000
    assert summary["lr_test"]["p"] < 0.001 and summary["delta_c"]["estimate"] > 0
    assert summary["delta_c"]["low"] is not None and summary["delta_c"]["draws"] == 8
    assert summary["ph_test"]["gap_p"] > 0 and "sex" in summary["adjusted_for"]
    assert summary["warnings"] == []
    effects = pd.read_csv(tmp_path / "out" / "effects.csv")
    assert {"gap per year at age 50", "gap per year at age 70", "gap per 5 years"} <= set(effects["effect"])
    assert effects["effect"].str.contains("above").any() and effects["effect"].str.contains("below").any()
    assert (tmp_path / "out" / "forest.png").stat().st_size > 0
    assert (tmp_path / "out" / "adjusted_curves.png").stat().st_size > 0
    assert "gap per year: HR 1.0" in result.out


@pytest.mark.parametrize("ratio", [1.05, 1.0])
def test_coverage_over_seeds_and_the_null(ratio):
    """Three seeds of 1,000 patients: the 95% CI covers the true ratio in most, and the null's p is not small
    in most (no bootstrap: only the fits are checked)."""
    covered = 0
    for seed in range(1, 4):
        frame = simulate(1000, ratio, seed).assign(gap=lambda f: f["predicted_age"] - f["age"])
        gap = analyse_gap(frame, COX_OUTCOME, ["sex"], OutcomeSettings(5.0, "test", bootstrap=0)).summary["gap"]
        covered += gap["low"] <= ratio <= gap["high"]
    assert covered >= 2


def test_the_ratios_are_the_libraries_own_fits():
    """exp(coefficient) of lifelines' CoxPHFitter and of statsmodels' Logit, called directly on the frame."""
    import statsmodels.api as sm
    from lifelines import CoxPHFitter

    frame = simulate(600, 1.05, seed=4).assign(gap=lambda f: f["predicted_age"] - f["age"])
    cox = analyse_gap(frame, COX_OUTCOME, ["sex"], OutcomeSettings(5.0, "test", bootstrap=0))
    design = build_design(frame, COX_OUTCOME, ["sex"]).frame
    direct = CoxPHFitter().fit(design[["age", "age_sq", "sex=F", "gap", "time", "event"]], "time", "event")
    assert cox.summary["gap"]["ratio"] == pytest.approx(np.exp(direct.params_["gap"]), rel=1e-9)
    assert cox.summary["gap"]["low"] == pytest.approx(float(np.exp(direct.confidence_intervals_.loc["gap"].iloc[0])),
                                                      rel=1e-6)
    assert cox.summary["gap"]["p"] == pytest.approx(direct.summary.loc["gap", "p"], rel=1e-6)

    binary = simulate(600, 1.05, seed=5, binary=True).assign(gap=lambda f: f["predicted_age"] - f["age"])
    outcome = OutcomeColumns(binary="outcome")
    logistic = analyse_gap(binary, outcome, ["sex"], OutcomeSettings(5.0, "test", bootstrap=0))
    exog = sm.add_constant(build_design(binary, outcome, ["sex"]).frame[["age", "age_sq", "sex=F", "gap"]])
    fitted = sm.Logit(binary["outcome"], exog).fit(disp=0)
    assert logistic.summary["gap"]["ratio"] == pytest.approx(np.exp(fitted.params["gap"]), rel=1e-9)
    assert logistic.summary["gap"]["p"] == pytest.approx(fitted.pvalues["gap"], rel=1e-6)
    assert logistic.summary["lr_test"]["chi2"] == pytest.approx(
        2 * (fitted.llf - sm.Logit(binary["outcome"], exog.drop(columns="gap")).fit(disp=0).llf), rel=1e-6)


def _covid_predictions(tmp_path) -> str:
    """Predicted ages for the real table's X-ray images (the images are not public here: the ages are drawn,
    so the test checks the handling of the real table, not a finding)."""
    table = pd.read_csv(COVID, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(0)
    rays = table[(table["modality"] == "X-ray") & (table["age"] != "")].drop_duplicates("filename")
    ages = rays["age"].astype(float) + rng.normal(0, 8, len(rays))
    path = tmp_path / "covid_predictions.csv"
    pd.DataFrame({"file": "images/" + rays["filename"], "predicted_age": ages.round(2)}).to_csv(path, index=False)
    return str(path)


def test_binary_outcome_on_the_covid_collections_real_table(tmp_path, capsys):
    """Death (`survival` N) against Y, with `?` and blanks not recorded, CT rows unmatched, one image per
    patient (the earliest offset), adjusted for age, sex and view: an odds ratio with a few-events warning."""
    result = _command(capsys, _covid_predictions(tmp_path), "--outcomes", COVID, "--binary", "survival",
                      "--positive", "N", "--image-column", "filename", "--patient-column", "patientid",
                      "--date", "offset", "--bootstrap", 5, "--out", tmp_path / "out")
    assert result.code == 0, result.err
    summary = json.loads((tmp_path / "out" / "outcomes.json").read_text())
    assert summary["model"] == "logistic" and summary["gap"]["per"] == "year"
    assert summary["gap"]["low"] < summary["gap"]["ratio"] < summary["gap"]["high"]
    assert summary["n"] == summary["patients"] and 0 < summary["events"] < summary["n"]
    assert {"age", "age_sq", "sex", "view"} <= set(summary["adjusted_for"])
    counts = summary["counts"]
    assert counts["unmatched_outcome_rows"] >= 20  # the CT rows have no prediction
    assert counts["excluded_survival"] >= 4 and counts["excluded_later_image"] > 0
    assert any("per parameter" in warning for warning in summary["warnings"])
    excluded = pd.read_csv(tmp_path / "out" / "excluded.csv")
    assert excluded["reason"].str.contains("'\\?'").any()
    assert "warning: only" in result.out and "earliest offset" in result.out


def test_a_gap_collinear_with_age_is_called_an_artefact(tmp_path):
    """A model that predicts near the mean: gap = constant - age, and the warning says so."""
    frame = simulate(800, 1.0, seed=6)
    frame["predicted_age"] = 60 + np.random.default_rng(0).normal(0, 0.5, len(frame))
    predictions, table = write_cohort(frame, tmp_path, ["time", "event"])
    question = OutcomeQuestion(COX_OUTCOME, bootstrap=0)
    joined = join_outcomes(read_predictions(predictions), table, question)
    summary = analyse_gap(joined.frame, COX_OUTCOME, joined.covariates, OutcomeSettings(5.0, "t", 0)).summary
    assert summary["gap_vif"] > 5 and any("artefact" in warning for warning in summary["warnings"])


@pytest.mark.parametrize("change, args, message", [
    ("rename", ["--time", "time", "--event", "event"], "no row of the outcome table"),
    ("none", ["--time", "months", "--event", "event"], "lacks the column(s) months"),
    ("all_events", ["--time", "time", "--event", "event"], "all of the"),
    ("no_events", ["--time", "time", "--event", "event"], "none of the"),
    ("none", ["--binary", "event", "--time", "time"], "not both"),
    ("none", ["--time", "time"], "name the outcome"),
])
def test_bad_input_is_one_line(tmp_path, capsys, change, args, message):
    frame = simulate(60, 1.05, seed=7)
    frame["event"] = {"all_events": 1, "no_events": 0}.get(change, frame["event"])
    predictions, table = write_cohort(frame, tmp_path, ["time", "event"])
    if change == "rename":
        pd.read_csv(table).assign(image=lambda f: "other_" + f["image"]).to_csv(table, index=False)
    result = _command(capsys, predictions, "--outcomes", table, *args, "--bootstrap", 0, "--out", tmp_path / "o")
    assert result.code == 2 and message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert not (tmp_path / "o" / "outcomes.json").exists()


def test_a_runs_predictions_joined_on_patient_with_the_corrected_gap_and_the_report(phantom_run, capsys):
    """A run's test split joined on the patient id, its ages taken from the predictions, the bias-corrected
    gap reported beside the raw one (its trend fitted on the run's validation split), written into the run
    by default and shown in its report."""
    from cxr_age.run import Run
    from cxr_age.workflows.report import build_report

    run_dir, _ = phantom_run
    test = Run(run_dir).predictions("test")
    rng = np.random.default_rng(0)
    table = run_dir.parent / "phantom_outcomes.csv"
    pd.DataFrame({"patient_id": test["patient_id"], "died": (rng.random(len(test)) < 0.4).astype(int)}
                 ).to_csv(table, index=False)
    result = _command(capsys, run_dir, "--outcomes", table, "--on", "patient_id", "--binary", "died",
                      "--bootstrap", 3)
    assert result.code == 0, result.err
    folder, = (run_dir / "outcomes").iterdir()
    summary = json.loads((folder / "outcomes.json").read_text())
    assert summary["n"] == len(test) and summary["threshold"]["source"] == "the model's test MAE"
    assert summary["bias_corrected_gap"].startswith("reported beside")
    assert any("predictions' age column" in note for note in summary["notes"])
    effects = pd.read_csv(folder / "effects.csv")
    assert effects["effect"].str.startswith("corrected gap").any()
    page = build_report(run_dir)
    assert 'id="outcomes"' in page and "gap per year: OR" in page
