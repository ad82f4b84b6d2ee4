"""Prediction intervals for the age regressor with guaranteed coverage: split conformal prediction (Vovk et
al. 2005; Angelopoulos & Bates 2021, "A gentle introduction to conformal prediction"), Mondrian by predicted
age band (Vovk et al. 2005, ch. 4; Boström & Johansson 2020).

The score is the absolute error |age - predicted age| on the run's validation split, never the test split.
Age models err more on the old than on the young, so one width for all would over-cover the young and
under-cover the old. The calibration images are therefore grouped by their *predicted* age into bands of at
least `MIN_BAND` images (the paper's decades, neighbours merged until each band is large enough), and each
band gets its own quantile: since a band is chosen from the prediction alone, the interval of a new image
covers its true age with probability at least the nominal level within its band (given exchangeable images),
not only on average. This needs no second network head, as conformalised quantile regression would.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxr_age.errors import CxrAgeError
from cxr_age.io.files import write_json

DEFAULT_COVERAGE = 0.9
MIN_BAND = 30
EDGES = tuple(range(10, 90, 10))  # the paper's decade edges, on the predicted age


def _bands(predicted: np.ndarray, min_band: int) -> list[float]:
    """Upper edges of the bands of predicted age (the last one open): decades merged with their upper
    neighbour until each holds `min_band` calibration images, and a short last band merged downwards."""
    edges: list[float] = []
    start = -math.inf
    for edge in EDGES:
        if np.sum((predicted > start) & (predicted <= edge)) >= min_band:
            edges.append(float(edge))
            start = edge
    if edges and np.sum(predicted > edges[-1]) < min_band:
        edges.pop()
    return edges


def _band_of(predicted: np.ndarray, edges: list[float]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges, dtype=float), predicted, side="left")


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The ceil((n + 1) * coverage) / n empirical quantile of `scores`: the split-conformal threshold whose
    interval covers a new exchangeable point with probability at least `coverage`. Infinite if n is too
    small for that coverage."""
    n = len(scores)
    rank = math.ceil((n + 1) * coverage)
    return math.inf if rank > n else float(np.sort(scores)[rank - 1])


@dataclass
class AgeIntervals:
    """Calibrated absolute errors per band of predicted age; `bounds` gives intervals at any coverage."""

    edges: list[float]
    scores: list[np.ndarray]
    coverage: float = DEFAULT_COVERAGE
    max_age: float = 90.0

    @classmethod
    def fit(cls, predicted: np.ndarray, truth: np.ndarray, coverage: float = DEFAULT_COVERAGE,
            max_age: float = 90.0, min_band: int | None = MIN_BAND) -> AgeIntervals:
        """Calibrate on one split's predictions. `min_band=None` makes one band: a single width for all
        (the plain split-conformal interval)."""
        if not 0 < coverage < 1:
            raise CxrAgeError(f"coverage must lie between 0 and 1, got {coverage}")
        predicted, truth = np.asarray(predicted, float), np.asarray(truth, float)
        edges = [] if min_band is None else _bands(predicted, min_band)
        band = _band_of(predicted, edges)
        errors = np.abs(truth - predicted)
        return cls(edges, [np.sort(errors[band == b]) for b in range(len(edges) + 1)], coverage, max_age)

    def half_widths(self, coverage: float | None = None) -> np.ndarray:
        """The half-width of each band's interval at `coverage` (default: the calibrated one)."""
        return np.array([conformal_quantile(s, coverage or self.coverage) for s in self.scores])

    def bounds(self, predicted: np.ndarray, coverage: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends of each prediction's interval, clipped to [0, max_age] (true ages lie there,
        so the clip cannot lose coverage)."""
        predicted = np.asarray(predicted, float)
        half = self.half_widths(coverage)[_band_of(predicted, self.edges)]
        return np.clip(predicted - half, 0, self.max_age), np.clip(predicted + half, 0, self.max_age)

    def describe(self) -> list[dict]:
        """Each band: its range of predicted age, calibration images and half-width."""
        lows = [0.0, *self.edges]
        highs = [*self.edges, self.max_age]
        return [{"predicted_age": f"{low:g}-{high:g}", "calibration_images": len(s), "half_width": float(h)}
                for low, high, s, h in zip(lows, highs, self.scores, self.half_widths())]

    def save(self, path: Path) -> None:
        write_json({"method": "split conformal, Mondrian by predicted-age band; score |age - predicted age|",
                    "calibrated_on": "val", "coverage": self.coverage, "max_age": self.max_age,
                    "edges": self.edges, "bands": self.describe(),
                    "scores": [np.round(s, 4).tolist() for s in self.scores]}, path)

    @classmethod
    def load(cls, path: Path) -> AgeIntervals:
        raw = json.loads(path.read_text())
        return cls([float(e) for e in raw["edges"]], [np.asarray(s, float) for s in raw["scores"]],
                   float(raw["coverage"]), float(raw["max_age"]))

