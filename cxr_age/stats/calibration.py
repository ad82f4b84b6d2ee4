"""Calibration of the age-group classifier: expected calibration error and reliability diagrams, temperature
scaling (Guo et al. 2017, "On calibration of modern neural networks"), conformal prediction sets over the age
groups (adaptive prediction sets, Romano, Sesia & Candès 2020), and the classifier's expected age, so that
both of the paper's experiments can be read in years.

The temperature and the set threshold are fitted on the validation split only. The softmax outputs are
turned back into logits as their logarithms (softmax of log p is p), so a run's saved probabilities suffice.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from cxr_age.io.ages import N_GROUPS
from cxr_age.io.files import write_json
from cxr_age.stats.bootstrap import Weighted
from cxr_age.stats.conformal import conformal_quantile

ECE_BINS = 15
GROUP_MIDPOINTS = np.arange(5.0, 90.0, 10.0)  # the middle of each decade, (0,10] .. (80,90]


def expected_calibration_error(probabilities: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the image-weighted mean gap between confidence (the top probability) and accuracy over
    equal-width confidence bins (Guo et al. 2017), from the reliability diagram's points."""
    return float(sum(p["images"] * abs(p["accuracy"] - p["confidence"])
                     for p in reliability(probabilities, truth, bins)) / max(len(truth), 1))


def weighted_ece(probabilities: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> Weighted:
    """`expected_calibration_error` over weighted rows (for the patient bootstrap): the sum over bins of
    |sum of (correct - confidence)| divided by the total weight."""
    confidence = probabilities.max(axis=1)
    gaps = (probabilities.argmax(axis=1) == truth) - confidence
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    members = np.eye(bins)[which]  # [rows, bins]

    return lambda weights: np.abs((weights * gaps) @ members).sum(axis=1) / weights.sum(axis=1)


def reliability(probabilities: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: images, mean confidence and accuracy (the reliability diagram's points)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    points = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            points.append({"bin": b, "images": int(inside.sum()), "confidence": float(confidence[inside].mean()),
                           "accuracy": float(correct[inside].mean())})
    return points


def _logits(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, 1e-12, 1.0))


def scale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of the logits divided by `temperature` (above 1 softens over-confident outputs)."""
    z = _logits(probabilities) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of `truth` (searched on log T)."""

    def nll(log_t: float) -> float:
        return float(-np.log(np.clip(scale(probabilities, math.exp(log_t))[np.arange(len(truth)), truth],
                                     1e-12, None)).mean())

    return float(math.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def _ranked(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each image's groups from most to least probable: their order, probabilities and cumulative mass."""
    order = np.argsort(-probabilities, axis=1, kind="stable")
    ranked = np.take_along_axis(probabilities, order, axis=1)
    return order, ranked, np.cumsum(ranked, axis=1)


def aps_scores(probabilities: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Adaptive-prediction-set conformity scores: the probability mass of the groups ranked at or above the
    true group (non-randomised, so sets are conservative: coverage at least nominal)."""
    order, _, cumulative = _ranked(probabilities)
    rank = np.argmax(order == truth[:, None], axis=1)
    return cumulative[np.arange(len(truth)), rank]


def prediction_sets(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean `[n, groups]`: the most probable groups of each image until their mass reaches `threshold`."""
    order, ranked, cumulative = _ranked(probabilities)
    keep_sorted = (cumulative - ranked) < threshold
    sets = np.zeros_like(probabilities, dtype=bool)
    np.put_along_axis(sets, order, keep_sorted, axis=1)
    return sets


def expected_age(probabilities: np.ndarray) -> np.ndarray:
    """The probability-weighted mean of the group midpoints, in years."""
    return probabilities[:, :N_GROUPS] @ GROUP_MIDPOINTS


@dataclass
class Calibration:
    """What is fitted on the validation split: the temperature and the prediction-set threshold."""

    temperature: float
    coverage: float
    threshold: float

    @classmethod
    def fit(cls, probabilities: np.ndarray, truth: np.ndarray, coverage: float) -> Calibration:
        temperature = fit_temperature(probabilities, truth)
        scores = aps_scores(scale(probabilities, temperature), truth)
        return cls(temperature, coverage, min(conformal_quantile(scores, coverage), 1.0))

    def sets(self, probabilities: np.ndarray) -> np.ndarray:
        """Prediction sets of raw (unscaled) probabilities."""
        return prediction_sets(scale(probabilities, self.temperature), self.threshold)

    def save(self, path: Path) -> None:
        write_json({"method": "temperature scaling (Guo et al. 2017) and adaptive prediction sets (Romano et "
                              "al. 2020), fitted on val", "temperature": self.temperature,
                    "coverage": self.coverage, "threshold": self.threshold}, path)

    @classmethod
    def load(cls, path: Path) -> Calibration:
        raw = json.loads(path.read_text())
        return cls(float(raw["temperature"]), float(raw["coverage"]), float(raw["threshold"]))
