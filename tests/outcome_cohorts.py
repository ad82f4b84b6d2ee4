"""Simulated cohorts with a known effect of the age gap, for the outcome analysis's tests: each patient has
an age, a sex, a predicted age whose gap regresses to the mean with age (as a real model's does) plus a
biological part, and an outcome drawn from a model in which the gap's hazard ratio (or odds ratio) per year,
adjusted for age and sex, is the one asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def simulate(n: int, ratio: float, seed: int, binary: bool = False) -> pd.DataFrame:
    """`n` patients (`image`, `patient_id`, `age`, `sex`, `predicted_age`) with `time`/`event` (Cox) or
    `outcome` (logistic), the gap's true ratio per year being `ratio`."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(40, 85, n)
    male = rng.random(n) < 0.5
    gap = -0.3 * (age - 60) + rng.normal(0, 5, n)  # regression to the mean, plus a biological part
    linear = np.log(ratio) * gap + 0.08 * (age - 60) + 0.3 * male
    frame = pd.DataFrame({"image": [f"{i:05d}_000.png" for i in range(n)], "patient_id": np.arange(n).astype(str),
                          "age": age.round(1), "sex": np.where(male, "M", "F"),
                          "predicted_age": (age + gap).round(2)})
    if binary:
        frame["outcome"] = (rng.random(n) < 1 / (1 + np.exp(-(linear - 1.0)))).astype(int)
        return frame
    event_time = rng.exponential(1 / (0.05 * np.exp(linear)))
    censor = rng.uniform(2, 10, n)
    frame["time"] = np.minimum(event_time, censor).round(3) + 0.001
    frame["event"] = (event_time <= censor).astype(int)
    return frame


def write_cohort(frame: pd.DataFrame, folder: Path, outcome_columns: list[str]) -> tuple[Path, Path]:
    """The cohort as `cxr-age-predict --csv` would write its predictions, and the outcome table."""
    folder.mkdir(parents=True, exist_ok=True)
    predictions = folder / "predictions.csv"
    frame.assign(file="/studies/" + frame["image"])[["file", "predicted_age"]].to_csv(predictions, index=False)
    table = folder / "outcomes.csv"
    frame[["image", "patient_id", "age", "sex", *outcome_columns]].to_csv(table, index=False)
    return predictions, table
