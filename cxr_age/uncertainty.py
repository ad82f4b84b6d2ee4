"""How sure a run is, fitted on its validation split and checked on its test split: conformal prediction
intervals for the regressor (`cxr_age.conformal`), temperature scaling, prediction sets and the expected age
for the classifier (`cxr_age.calibration`). Called by `evaluate` once both splits are predicted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxr_age import figures
from cxr_age.bootstrap import BOOTSTRAP_DRAWS, mean_interval, weighted_interval
from cxr_age.calibration import Calibration, expected_age, reliability, scale, weighted_ece
from cxr_age.config import Experiment
from cxr_age.conformal import AgeIntervals
from cxr_age.data.ages import GROUP_LABELS
from cxr_age.metrics import interval_metrics
from cxr_age.run_files import CALIBRATION, CONFORMAL


def with_intervals(predictions: pd.DataFrame, intervals: AgeIntervals,
                   coverage: float | None = None) -> pd.DataFrame:
    """`predictions` with `interval_low` and `interval_high` around each `predicted_age`."""
    low, high = intervals.bounds(predictions["predicted_age"].to_numpy(float), coverage)
    return predictions.assign(interval_low=low, interval_high=high)


def regression_uncertainty(run_dir: Path, experiment: Experiment, train: pd.DataFrame, val: pd.DataFrame,
                           test: pd.DataFrame, coverage: float, note: str,
                           split: str = "test") -> tuple[pd.DataFrame, dict]:
    """Calibrate intervals on `val`, save them in the run, and return `test` with its intervals and their
    coverage report (`metrics.interval_metrics`) with the coverage figure written."""
    intervals = AgeIntervals.fit(val["predicted_age"], val["age"], coverage, experiment.data.max_age)
    intervals.save(run_dir / CONFORMAL)
    test = with_intervals(test, intervals)
    report = {"calibrated_on": "val", "split": split, **interval_metrics(test, coverage, experiment.data.seed),
              "bands": intervals.describe()}
    figures.coverage_by_group(report["per_group"], coverage, run_dir / f"coverage_by_age_{split}.png", note)
    return test, report


def _set_labels(sets: np.ndarray) -> list[str]:
    """Each image's prediction set as its group labels joined by `|`."""
    return ["|".join(np.asarray(GROUP_LABELS)[row]) for row in sets]


def _probabilities(frame: pd.DataFrame) -> np.ndarray:
    return frame[[f"p_{label}" for label in GROUP_LABELS]].to_numpy(float)


def classification_uncertainty(run_dir: Path, experiment: Experiment, train: pd.DataFrame, val: pd.DataFrame,
                               test: pd.DataFrame, coverage: float, note: str,
                               split: str = "test") -> tuple[pd.DataFrame, dict]:
    """Fit the temperature and the prediction-set threshold on `val`, save them in the run, and report on
    `test`: ECE before and after scaling, set coverage and size, and the expected age's MAE beside the
    training median's, each with a patient-bootstrap 95% interval; writes the reliability diagram."""
    calibration = Calibration.fit(_probabilities(val), val["group"].to_numpy(int), coverage)
    calibration.save(run_dir / CALIBRATION)
    raw = _probabilities(test)
    scaled = scale(raw, calibration.temperature)
    truth = test["group"].to_numpy(int)
    sets = calibration.sets(raw)
    ages = expected_age(scaled)
    test = test.assign(expected_age=ages, prediction_set=_set_labels(sets))
    patients = test["patient_id"].to_numpy(str)
    true_age = test["age"].to_numpy(float)
    median = float(train["age"].median())
    seed, draws = experiment.data.seed, BOOTSTRAP_DRAWS
    report = {
        "calibrated_on": "val", "split": split, "temperature": calibration.temperature,
        "ece_before": weighted_interval(patients, weighted_ece(raw, truth), seed, draws),
        "ece_after": weighted_interval(patients, weighted_ece(scaled, truth), seed, draws),
        "sets": {"nominal": coverage,
                 "coverage": mean_interval(patients, sets[np.arange(len(truth)), truth], seed, draws),
                 "mean_size": mean_interval(patients, sets.sum(axis=1), seed, draws)},
        "expected_age_mae": mean_interval(patients, np.abs(ages - true_age), seed, draws),
        "median_baseline_mae": float(np.abs(true_age - median).mean()),
    }
    figures.reliability_diagram(reliability(raw, truth), reliability(scaled, truth), calibration.temperature,
                                run_dir / f"reliability_{split}.png", note)
    return test, report


UNCERTAINTY = {"regress": regression_uncertainty, "classify": classification_uncertainty}


def uncertainty_columns(frame: pd.DataFrame, intervals: AgeIntervals | None, calibration: Calibration | None,
                        coverage: float | None = None) -> pd.DataFrame:
    """Decoded predictions with how sure the model is: `interval_low`, `interval_high` and
    `interval_coverage` for a regressor with calibrated intervals; `expected_age` and `prediction_set` for a
    classifier with a fitted calibration."""
    if intervals is not None:
        frame = with_intervals(frame, intervals, coverage).assign(interval_coverage=coverage or intervals.coverage)
    if calibration is not None:
        raw = _probabilities(frame)
        frame = frame.assign(expected_age=expected_age(scale(raw, calibration.temperature)),
                             prediction_set=_set_labels(calibration.sets(raw)))
    return frame
