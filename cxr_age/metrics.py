"""Honest metrics: each with a 95% bootstrap interval resampled by patient (images of one person are not
independent), beside a trivial baseline (the training median age; the training majority age group)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from cxr_age.data.ages import GROUP_LABELS, N_GROUPS

BOOTSTRAP_DRAWS = 1000


def _pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if np.std(y_pred) == 0 or np.std(y_true) == 0:
        return float("nan")
    return float(np.corrcoef(y_true, y_pred)[0, 1])


REGRESSION_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "mae": mean_absolute_error,
    "rmse": root_mean_squared_error,
    "r2": r2_score,
    "pearson_r": _pearson,
}


def patient_bootstrap(patients: np.ndarray, statistic: Callable[[np.ndarray], float], seed: int = 0,
                      draws: int = BOOTSTRAP_DRAWS) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of `statistic(row_indices)` over `draws` resamples of whole patients."""
    _, inverse = np.unique(patients, return_inverse=True)
    rows_of = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        chosen = rng.integers(0, len(rows_of), len(rows_of))
        values.append(statistic(np.concatenate([rows_of[i] for i in chosen])))
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def with_interval(patients: np.ndarray, fn: Callable[[np.ndarray], float], seed: int,
                   draws: int) -> dict[str, float]:
    low, high = patient_bootstrap(patients, fn, seed, draws)
    return {"value": float(fn(np.arange(len(patients)))), "ci95": [low, high]}


def regression_metrics(frame: pd.DataFrame, train_median: float, seed: int = 0,
                       draws: int = BOOTSTRAP_DRAWS) -> dict:
    """MAE, RMSE, R² and Pearson r (years) of `predicted_age` against `age`, with patient-bootstrap 95%
    intervals, beside the same metrics for always predicting `train_median`."""
    y_true = frame["age"].to_numpy(float)
    y_pred = frame["predicted_age"].to_numpy(float)
    patients = frame["patient_id"].to_numpy(str)
    baseline = np.full_like(y_true, train_median)
    result = {"images": len(frame), "patients": int(len(np.unique(patients))), "model": {}, "baseline": {}}
    for name, metric in REGRESSION_METRICS.items():
        result["model"][name] = with_interval(patients, lambda i, m=metric: m(y_true[i], y_pred[i]), seed, draws)
        result["baseline"][name] = float(metric(y_true, baseline))
    result["baseline"]["predicts"] = f"training median age, {train_median:g} years"

    def mae(part: pd.DataFrame) -> dict:
        errors = (part["predicted_age"] - part["age"]).abs().to_numpy(float)
        return {"mae": with_interval(part["patient_id"].to_numpy(str), lambda i: float(errors[i].mean()), seed, draws),
                "baseline_mae": float((part["age"] - train_median).abs().mean())}

    return {**result, **by_facet(frame, mae)}


def _macro_auc(onehot: np.ndarray, probabilities: np.ndarray) -> float:
    present = [g for g in range(N_GROUPS) if 0 < onehot[:, g].sum() < len(onehot)]
    if not present:
        return float("nan")
    return float(np.mean([roc_auc_score(onehot[:, g], probabilities[:, g]) for g in present]))


def classification_metrics(frame: pd.DataFrame, train_majority: int, seed: int = 0,
                           draws: int = BOOTSTRAP_DRAWS) -> dict:
    """Per-group one-vs-rest AUC, macro AUC, accuracy and off-by-one-group accuracy from the `p_<group>`
    columns, with patient-bootstrap 95% intervals, beside the majority-group baseline."""
    probabilities = frame[[f"p_{label}" for label in GROUP_LABELS]].to_numpy(float)
    truth = frame["group"].to_numpy(int)
    predicted = probabilities.argmax(axis=1)
    onehot = np.eye(N_GROUPS)[truth]
    patients = frame["patient_id"].to_numpy(str)
    per_group = {}
    for g, label in enumerate(GROUP_LABELS):
        present = 0 < onehot[:, g].sum() < len(frame)
        per_group[label] = {
            "images": int(onehot[:, g].sum()),
            "auc": float(roc_auc_score(onehot[:, g], probabilities[:, g])) if present else None,
        }
    model = {
        "macro_auc": with_interval(patients, lambda i: _macro_auc(onehot[i], probabilities[i]), seed, draws),
        "accuracy": with_interval(patients, lambda i: accuracy_score(truth[i], predicted[i]), seed, draws),
        "off_by_one_accuracy": with_interval(
            patients, lambda i: float(np.mean(np.abs(truth[i] - predicted[i]) <= 1)), seed, draws),
    }
    baseline = {
        "predicts": f"training majority group, {GROUP_LABELS[train_majority]}",
        "macro_auc": 0.5,
        "accuracy": float(np.mean(truth == train_majority)),
        "off_by_one_accuracy": float(np.mean(np.abs(truth - train_majority) <= 1)),
    }

    def accuracy(part: pd.DataFrame) -> dict:
        hits = part["hit"].to_numpy(float)
        return {"accuracy": with_interval(part["patient_id"].to_numpy(str), lambda i: float(hits[i].mean()), seed,
                                          draws),
                "baseline_accuracy": float((part["group"] == train_majority).mean())}

    facets = by_facet(frame.assign(hit=truth == predicted), accuracy)
    for label, counts in per_group.items():
        counts.update(facets["per_group"].get(label, {}))
    return {"images": len(frame), "patients": int(len(np.unique(patients))), "model": model,
            "baseline": baseline, **facets, "per_group": per_group}


AGE_GROUP_LABELS = np.asarray((*GROUP_LABELS, "over 90"))  # group -1 (over 90, if --max-age keeps it) is last


def _facet_levels(frame: pd.DataFrame) -> dict[str, tuple[pd.Series, list[str]]]:
    """Each facet's value per row and its levels: true age group, view, sex, and dataset when there are several."""
    groups = pd.Series(AGE_GROUP_LABELS[frame["group"].to_numpy(int)], index=frame.index)
    facets = {"group": (groups, list(AGE_GROUP_LABELS))}
    for column in ("view", "sex", "dataset"):
        if column in frame:
            values = frame[column].fillna("").astype(str).replace("", "not recorded")
            if column != "dataset" or values.nunique() > 1:
                facets[column] = (values, sorted(values.unique()))
    return facets


def by_facet(frame: pd.DataFrame, summary: Callable[[pd.DataFrame], dict]) -> dict[str, dict[str, dict]]:
    """`summary` of the rows of each level of each facet (`per_group`, `per_view`, `per_sex`, and
    `per_dataset` for a frame joining several), with the level's image and patient counts."""
    result = {}
    for facet, (values, levels) in _facet_levels(frame).items():
        table = {}
        for level in levels:
            part = frame[values == level]
            if len(part):
                table[level] = {"images": len(part), "patients": int(part["patient_id"].nunique()), **summary(part)}
        result[f"per_{facet}"] = table
    return result


def interval_metrics(frame: pd.DataFrame, coverage: float, seed: int = 0, draws: int = BOOTSTRAP_DRAWS) -> dict:
    """Empirical coverage of the `interval_low`..`interval_high` intervals (the share of true ages inside)
    and their mean width, overall and per true age group, view and sex, each coverage with its patient-
    bootstrap 95% interval, beside the nominal `coverage`."""
    frame = frame.assign(covered=(frame["interval_low"] <= frame["age"]) & (frame["age"] <= frame["interval_high"]),
                         width=frame["interval_high"] - frame["interval_low"])

    def summary(part: pd.DataFrame) -> dict:
        covered = part["covered"].to_numpy(float)
        return {"coverage": with_interval(part["patient_id"].to_numpy(str), lambda i: float(covered[i].mean()),
                                          seed, draws),
                "mean_width": float(part["width"].mean())}

    patients = frame["patient_id"].to_numpy(str)
    covered, width = frame["covered"].to_numpy(float), frame["width"].to_numpy(float)
    return {
        "nominal": coverage,
        "coverage": with_interval(patients, lambda i: float(covered[i].mean()), seed, draws),
        "mean_width": with_interval(patients, lambda i: float(width[i].mean()), seed, draws),
        **by_facet(frame, summary),
    }
