"""Age gap: predicted minus true age, as a candidate health signal (the paper's motivation), by NIH finding,
sex and view.

Regression toward the mean makes the raw gap depend on age: young people are predicted older and old people
younger, so a finding common in the old would look "younger" for no biological reason. As in the brain-age
literature (Le et al. 2018; Beheshti et al. 2019; de Lange & Cole 2020), a line `gap = a + b * age` is fitted
on the validation split and subtracted on the test split: the corrected gap is the part of the gap that the
true age does not explain. Both gaps are reported and named. Intervals are patient-bootstrap 95% intervals
(`cxr_age.stats.bootstrap`); every level is shown with its counts, however few.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.stats.bootstrap import BOOTSTRAP_DRAWS, mean_interval

# The 14 ChestX-ray14 findings and the label of images without any.
FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
            "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
            "No Finding")
FACETS = {"finding": "findings", "sex": "sex", "view": "view"}
NOT_RECORDED = "(not recorded)"
MIN_PATIENTS_FOR_INTERVAL = 2
GAPS = {"gap": "raw gap (predicted - true age)", "corrected_gap": "corrected gap (validation-fitted age trend removed)"}
BEYOND = "beyond_interval"  # 1 where the true age lies outside the run's conformal interval


@dataclass(frozen=True)
class Correction:
    """The age trend of the gap on the validation split: `gap = intercept + slope * age`."""

    intercept: float
    slope: float
    images: int

    def trend(self, ages: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * ages


def fit_correction(validation: pd.DataFrame) -> Correction:
    """Least-squares line of the gap on the true age over the validation predictions."""
    ages = validation["age"].to_numpy(float)
    if len(validation) < 3 or np.ptp(ages) == 0:
        raise CxrAgeError(f"the validation split has {len(validation)} images of {len(np.unique(ages))} distinct "
                          "ages: too few to fit the age trend of the gap")
    slope, intercept = np.polyfit(ages, validation["predicted_age"].to_numpy(float) - ages, 1)
    return Correction(float(intercept), float(slope), len(validation))


def with_gaps(predictions: pd.DataFrame, correction: Correction) -> pd.DataFrame:
    """`predictions` with the raw `gap` and the `corrected_gap` per image."""
    frame = predictions.copy()
    frame["gap"] = frame["predicted_age"] - frame["age"]
    frame["corrected_gap"] = frame["gap"] - correction.trend(frame["age"].to_numpy(float))
    if "interval_low" in frame:
        # a gap larger than the model's own calibrated error explains: the true age outside the interval
        frame[BEYOND] = ((frame["age"] < frame["interval_low"]) | (frame["age"] > frame["interval_high"])).astype(float)
    return frame


def _levels(frame: pd.DataFrame, facet: str) -> pd.Series:
    """Each image's level(s) of `facet`: one row per (image, level); findings are `|`-separated."""
    values = frame[FACETS[facet]].fillna("").astype(str).str.strip()
    if facet == "finding":
        values = values.str.split("|")
        values = values.explode().str.strip()
    return values.replace("", NOT_RECORDED)


def _mean_with_interval(part: pd.DataFrame, column: str, seed: int) -> tuple[float, float, float]:
    """Mean and patient-bootstrap 95% interval; no interval from fewer than two patients."""
    if part.empty:
        return float("nan"), float("nan"), float("nan")
    values = part[column].to_numpy(float)
    if part["patient_id"].nunique() < MIN_PATIENTS_FOR_INTERVAL:
        return float(values.mean()), float("nan"), float("nan")
    result = mean_interval(part["patient_id"].to_numpy(str), values, seed, BOOTSTRAP_DRAWS)
    return result["value"], *result["ci95"]


def _uses_nih_labels(frame: pd.DataFrame) -> bool:
    """Whether the findings are ChestX-ray14's labels (NIH tables, and generic CSVs, which use them)."""
    return "dataset" not in frame or bool(frame["dataset"].isin(("nih", "csv", "")).all())


def facet_table(frame: pd.DataFrame, facet: str, seed: int = 0) -> pd.DataFrame:
    """Per level of `finding`, `sex` or `view`: images, patients, mean age, and the mean raw and corrected
    gap with 95% intervals. With ChestX-ray14's labels, all 15 are listed, with zero counts where absent."""
    levels = _levels(frame, facet)
    expanded = frame.loc[levels.index].assign(level=levels.to_numpy())
    order = list(FINDINGS) if facet == "finding" and _uses_nih_labels(frame) else []
    order += [level for level in sorted(expanded["level"].unique()) if level not in order]
    rows = []
    for level in order:
        part = expanded[expanded["level"] == level]
        row = {"by": facet, "level": level, "images": len(part), "patients": int(part["patient_id"].nunique()),
               "mean_age": float(part["age"].mean()) if len(part) else float("nan")}
        for column in [*GAPS, BEYOND] if BEYOND in frame else GAPS:
            row[f"mean_{column}"], row[f"{column}_ci95_low"], row[f"{column}_ci95_high"] = (
                _mean_with_interval(part, column, seed))
        rows.append(row)
    return pd.DataFrame(rows)


def _age_dependence(frame: pd.DataFrame) -> dict[str, float]:
    """Pearson correlation of each gap with the true age on the test split (near 0 once corrected)."""
    ages = frame["age"].to_numpy(float)
    return {column: float(np.corrcoef(ages, frame[column])[0, 1]) if np.ptp(ages) > 0 else float("nan")
            for column in GAPS}


@dataclass
class AgeGap:
    """The summary written to `age_gap.json` and the table per facet."""

    summary: dict
    tables: dict[str, pd.DataFrame]
    split: str
    images: pd.DataFrame  # the predictions with each image's `gap` and `corrected_gap`
    correction: Correction

    def lines(self) -> list[str]:
        """The age-gap findings in words: the correction, the overall gaps, and the table per facet."""
        fit = self.summary["correction"]
        test = self.summary[self.split]
        where = "the test split" if self.split == "test" else f"the {self.split} images"
        lines = [f"age gap on {where} ({test['images']} images of {test['patients']} patients); correction "
                 f"fitted on {fit['images']} validation images: gap = {fit['intercept']:.2f} "
                 f"{'-' if fit['slope_per_year'] < 0 else '+'} {abs(fit['slope_per_year']):.3f} x age"]
        for column, name in GAPS.items():
            mean = test["mean"][column]
            lines.append(f"  {name}: mean {mean['mean']:+.2f} years (95% CI {mean['ci95_low']:+.2f} to "
                         f"{mean['ci95_high']:+.2f}); correlation with age {test['correlation_with_age'][column]:+.2f}")
        if BEYOND in test["mean"]:
            beyond = test["mean"][BEYOND]
            lines.append(f"  true age beyond the conformal interval (a gap larger than the model's own error "
                         f"explains): {beyond['mean']:.1%} of images (95% CI {beyond['ci95_low']:.1%} to "
                         f"{beyond['ci95_high']:.1%}); per finding, sex and view in the tables")
        for facet, table in self.tables.items():
            lines.append(f"  by {facet}: patients, mean raw gap, mean corrected gap (95% CI), years")
            for row in table.itertuples():
                if row.images == 0:
                    lines.append(f"    {row.level:<20} {0:>6}")
                    continue
                interval = ("(one patient: no interval)" if row.patients < MIN_PATIENTS_FOR_INTERVAL else
                            f"({row.corrected_gap_ci95_low:+.2f} to {row.corrected_gap_ci95_high:+.2f})")
                lines.append(f"    {row.level:<20} {row.patients:>6}  {row.mean_gap:+6.2f}  "
                             f"{row.mean_corrected_gap:+6.2f} {interval}")
        return lines


def age_gap(val: pd.DataFrame, test: pd.DataFrame, seed: int = 0, split: str = "test") -> AgeGap:
    """The age gap of `test`'s predictions, corrected by the trend fitted on `val`'s: per image, per level of
    each facet, and overall with patient-bootstrap 95% intervals."""
    correction = fit_correction(val)
    test = with_gaps(test, correction)
    tables = {facet: facet_table(test, facet, seed) for facet in FACETS}
    overall = {column: dict(zip(("mean", "ci95_low", "ci95_high"), _mean_with_interval(test, column, seed)))
               for column in ([*GAPS, BEYOND] if BEYOND in test else GAPS)}
    summary = {
        "definitions": GAPS,
        "correction": {"fitted_on": "val", "images": correction.images, "intercept": correction.intercept,
                       "slope_per_year": correction.slope},
        split: {"images": len(test), "patients": int(test["patient_id"].nunique()), "mean": overall,
                "correlation_with_age": _age_dependence(test)},
    }
    return AgeGap(summary, tables, split, test, correction)
