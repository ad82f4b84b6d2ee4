"""The added value of the gap as a change in discrimination, Harrell's C (Cox) or the AUC (logistic), of
base + gap over the base model, with a 95% percentile interval from a bootstrap over patients (one row each
in the analysed frame) that refits both models on every draw, so that the interval carries the fitting's
own optimism as well as the sampling's (Harrell, Regression Modeling Strategies, 2015, section 5.3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxr_age.errors import CxrAgeError
from cxr_age.stats.outcome_fits import OutcomeColumns, fit_model


def _difference(frame: pd.DataFrame, base: list[str], outcome: OutcomeColumns) -> float:
    return fit_model(frame, [*base, "gap"], outcome).concordance - fit_model(frame, base, outcome).concordance


def delta_concordance(frame: pd.DataFrame, base: list[str], outcome: OutcomeColumns, estimate: float,
                      draws: int, seed: int, progress: bool = True) -> dict:
    """`estimate` (the change on the whole frame) with its bootstrap interval (None from fewer than two
    draws); draws whose resample has no event, or whose fit fails, are counted in `failed` and left out."""
    rng = np.random.default_rng(seed)
    differences, failed = [], 0
    positive = frame[outcome.positive].to_numpy()
    for _ in tqdm(range(draws), desc="bootstrap", unit="draw", disable=None if progress else True):
        rows = rng.integers(0, len(frame), len(frame))
        if positive[rows].min() == positive[rows].max():
            failed += 1
            continue
        try:
            # a fresh index: lifelines aligns its concordance by index, which a resample repeats
            differences.append(_difference(frame.iloc[rows].reset_index(drop=True), base, outcome))
        except CxrAgeError:
            failed += 1
    low, high = (float(v) for v in np.percentile(differences, [2.5, 97.5])) if len(differences) >= 2 else (None, None)
    return {"estimate": float(estimate), "low": low, "high": high, "draws": draws,
            "failed": failed, "method": "patient bootstrap refitting both models, 95% percentile interval"}
