"""The weighted patient bootstrap gives the intervals of building each resampled table (the same seeded draws
of whole patients) and computing scikit-learn's metrics on it, for every statistic the package reports."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score, root_mean_squared_error

from cxr_age.stats.bootstrap import (
    weighted_auc,
    weighted_bootstrap,
    weighted_mean,
    weighted_pearson,
    weighted_r2,
)
from cxr_age.stats.calibration import expected_calibration_error, weighted_ece

DRAWS = 150


def resampled_interval(patients: np.ndarray, statistic, seed: int = 0, draws: int = DRAWS) -> tuple[float, float]:
    """The reference: per draw, the rows of `count` patients drawn with replacement, concatenated."""
    names, inverse = np.unique(patients, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == p) for p in range(len(names))]
    rng = np.random.default_rng(seed)
    values = np.array([statistic(np.concatenate([rows_of[i] for i in rng.integers(0, len(names), len(names))]))
                       for _ in range(draws)], dtype=float)
    values = values[np.isfinite(values)]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


@pytest.fixture(scope="module")
def table():
    """Ages, predictions with ties, a rare class and age-group probabilities: 300 images of 70 patients."""
    rng = np.random.default_rng(5)
    patients = rng.integers(0, 70, 300).astype(str)
    age = rng.uniform(20, 90, 300)
    predicted = np.round(age + rng.normal(0, 8, 300))  # whole years: many tied scores
    probabilities = rng.dirichlet(np.ones(9), 300)
    truth = rng.integers(0, 9, 300)
    rare = np.zeros(300, bool)
    rare[:4] = True  # present in few draws: NaN where absent, as scikit-learn cannot score them
    return patients, age, predicted, probabilities, truth, rare


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return roc_auc_score(labels, scores) if 0 < labels.sum() < len(labels) else float("nan")


@pytest.mark.parametrize("name", ["mean", "mae", "rmse", "r2", "pearson", "auc", "rare_auc", "ece"])
def test_weighted_intervals_equal_resampled_tables(table, name):
    patients, age, predicted, probabilities, truth, rare = table
    errors = age - predicted
    cases = {
        "mean": (weighted_mean(age), lambda i: age[i].mean()),
        "mae": (weighted_mean(np.abs(errors)), lambda i: mean_absolute_error(age[i], predicted[i])),
        "rmse": (lambda w: np.sqrt(weighted_mean(errors**2)(w)), lambda i: root_mean_squared_error(age[i],
                                                                                                   predicted[i])),
        "r2": (weighted_r2(age, predicted), lambda i: r2_score(age[i], predicted[i])),
        "pearson": (weighted_pearson(age, predicted), lambda i: np.corrcoef(age[i], predicted[i])[0, 1]),
        "auc": (weighted_auc(age > 60, predicted), lambda i: _auc(age[i] > 60, predicted[i])),
        "rare_auc": (weighted_auc(rare, predicted), lambda i: _auc(rare[i], predicted[i])),
        "ece": (weighted_ece(probabilities, truth), lambda i: expected_calibration_error(probabilities[i], truth[i])),
    }
    weighted, reference = cases[name]
    expected = resampled_interval(patients, reference)
    assert weighted_bootstrap(patients, weighted, draws=DRAWS) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert weighted(np.ones((1, len(age))))[0] == pytest.approx(reference(np.arange(len(age))), rel=1e-9)


def test_draws_come_in_chunks_with_the_same_stream():
    patients = np.repeat(np.arange(40).astype(str), 3)
    values = np.random.default_rng(1).normal(size=120)
    many = weighted_bootstrap(patients, weighted_mean(values), seed=3, draws=250)  # chunks of 100, 100, 50
    assert many == pytest.approx(resampled_interval(patients, lambda i: values[i].mean(), seed=3, draws=250))
