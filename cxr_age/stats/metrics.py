"""Honest metrics: each with a 95% bootstrap interval resampled by patient (images of one person are not
independent), beside a trivial baseline (the training median age; the training majority age group)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from cxr_age.io.ages import GROUP_LABELS, N_GROUPS
from cxr_age.stats.bootstrap import (
    BOOTSTRAP_DRAWS,
    Weighted,
    mean_interval,
    unresampled,
    weighted_auc,
    weighted_interval,
    weighted_mean,
    weighted_pearson,
    weighted_r2,
)

REGRESSION_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], Weighted]] = {
    "mae": lambda y_true, y_pred: weighted_mean(np.abs(y_true - y_pred)),
    "rmse": lambda y_true, y_pred: lambda weights: np.sqrt(weighted_mean((y_true - y_pred) ** 2)(weights)),
    "r2": weighted_r2,
    "pearson_r": weighted_pearson,
}


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
        result["model"][name] = weighted_interval(patients, metric(y_true, y_pred), seed, draws)
        result["baseline"][name] = unresampled(metric(y_true, baseline), len(y_true))
    result["baseline"]["predicts"] = f"training median age, {train_median:g} years"

    def mae(part: pd.DataFrame) -> dict:
        errors = (part["predicted_age"] - part["age"]).abs().to_numpy(float)
        return {"mae": mean_interval(part["patient_id"].to_numpy(str), errors, seed, draws),
                "baseline_mae": float((part["age"] - train_median).abs().mean())}

    return {**result, **by_facet(frame, mae)}


def _macro_auc(onehot: np.ndarray, probabilities: np.ndarray) -> Weighted:
    """The mean one-vs-rest AUC over the groups present (both classes) in each draw."""
    aucs = [weighted_auc(onehot[:, g], probabilities[:, g]) for g in range(N_GROUPS) if onehot[:, g].any()]

    def macro(weights: np.ndarray) -> np.ndarray:
        values = np.stack([auc(weights) for auc in aucs])
        with np.errstate(invalid="ignore"):
            return np.nanmean(values, axis=0) if np.isfinite(values).any() else np.full(len(weights), np.nan)

    return macro


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
            "auc": unresampled(weighted_auc(onehot[:, g], probabilities[:, g]), len(frame)) if present else None,
        }
    model = {
        "macro_auc": weighted_interval(patients, _macro_auc(onehot, probabilities), seed, draws),
        "accuracy": mean_interval(patients, truth == predicted, seed, draws),
        "off_by_one_accuracy": mean_interval(patients, np.abs(truth - predicted) <= 1, seed, draws),
    }
    baseline = {
        "predicts": f"training majority group, {GROUP_LABELS[train_majority]}",
        "macro_auc": 0.5,
        "accuracy": float(np.mean(truth == train_majority)),
        "off_by_one_accuracy": float(np.mean(np.abs(truth - train_majority) <= 1)),
    }

    def accuracy(part: pd.DataFrame) -> dict:
        return {"accuracy": mean_interval(part["patient_id"].to_numpy(str), part["hit"].to_numpy(float), seed, draws),
                "baseline_accuracy": float((part["group"] == train_majority).mean())}

    facets = by_facet(frame.assign(hit=truth == predicted), accuracy)
    for label, counts in per_group.items():
        counts.update(facets["per_group"].get(label, {}))
    return {"images": len(frame), "patients": int(len(np.unique(patients))), "model": model,
            "baseline": baseline, **facets, "per_group": per_group}


AGE_GROUP_LABELS = np.asarray((*GROUP_LABELS, "over 90"))  # group -1 (over 90, if `max_age` keeps it) is last


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
        return {"coverage": mean_interval(part["patient_id"].to_numpy(str), part["covered"].to_numpy(float), seed,
                                          draws),
                "mean_width": float(part["width"].mean())}

    patients = frame["patient_id"].to_numpy(str)
    return {
        "nominal": coverage,
        "coverage": mean_interval(patients, frame["covered"].to_numpy(float), seed, draws),
        "mean_width": mean_interval(patients, frame["width"].to_numpy(float), seed, draws),
        **by_facet(frame, summary),
    }
