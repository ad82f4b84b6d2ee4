"""The paper's regressor (Karargyris et al., SPIE 2019): a sigmoid unit on age / 90, trained on mean squared
error (round 1) or 1 - R² over the batch (round 2), judged by mean absolute error in years beside the
training median age, with split-conformal prediction intervals fitted on the validation split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.stats.conformal import AgeIntervals
from cxr_age.stats.metrics import interval_metrics, regression_metrics
from cxr_age.tasks.base import Baseline, Judging, Task, interval_text

# What the paper reports (../shared/PAPER.md), beside which a run's minimum validation loss is shown.
PAPER_VALUES = {
    "mse": ("minimum validation loss (MSE of age / 90, PA view)", 0.003),
    "r2": ("minimum validation loss as printed (ambiguous; most likely R² itself)", 0.90),
}


def with_intervals(predictions: pd.DataFrame, intervals: AgeIntervals,
                   coverage: float | None = None) -> pd.DataFrame:
    """`predictions` with `interval_low` and `interval_high` around each `predicted_age`."""
    low, high = intervals.bounds(predictions["predicted_age"].to_numpy(float), coverage)
    return predictions.assign(interval_low=low, interval_high=high)


class Regression(Task):
    """Age / `age_scale` through a sigmoid (the paper's regressor)."""

    def targets(self, frame: pd.DataFrame, age_scale: float = 90.0) -> np.ndarray:
        return np.clip(frame["age"].to_numpy(np.float32) / np.float32(age_scale), 0.0, 1.0)

    def decode(self, outputs: np.ndarray, age_scale: float = 90.0) -> np.ndarray:
        return np.asarray(outputs).reshape(-1) * age_scale

    def prediction_columns(self, outputs: np.ndarray, age_scale: float = 90.0) -> dict[str, np.ndarray]:
        return {"predicted_age": self.decode(outputs, age_scale)}

    def correct(self, predicted: np.ndarray, frame: pd.DataFrame, tolerance: float) -> np.ndarray:
        return np.abs(predicted - frame["age"].to_numpy()) <= tolerance

    def correct_means(self, tolerance: float) -> str:
        return f"|predicted - true age| <= {tolerance:g} years"

    def saliency_groups(self, group: int | str | None, n: int,
                        outputs: Callable[[], np.ndarray]) -> np.ndarray | None:
        if group is not None:
            raise CxrAgeError("`group` chooses a classifier's target; a regressor's maps explain its age")
        return None

    def metrics(self, predictions: pd.DataFrame, baseline: Baseline, seed: int) -> dict:
        return regression_metrics(predictions, baseline.median_age, seed)

    def keras_loss(self, loss: str) -> Any:
        from cxr_age.nets.losses import r2_loss

        return {"mse": "mean_squared_error", "r2": r2_loss}[self.check_loss(loss)]

    def keras_metrics(self, age_scale: float) -> list:
        import keras

        from cxr_age.nets.losses import YearsMAE

        return [YearsMAE(age_scale), keras.metrics.R2Score(name="r2")]

    def loss_description(self, loss: str) -> str:
        return {"mse": "mean squared error (age / 90)", "r2": "1 - R²"}[loss]

    def write_figures(self, predictions: pd.DataFrame, metrics: dict, judging: Judging) -> None:
        from cxr_age.viz import figures

        (scatter, _), (errors, _) = self.figure_files(judging.split)
        figures.predicted_vs_true(predictions, judging.folder / scatter, judging.note)
        figures.error_by_group(predictions, judging.folder / errors, judging.note)

    @property
    def uncertainty_type(self) -> type:
        return AgeIntervals

    def fit_uncertainty(self, val: pd.DataFrame, coverage: float, max_age: float) -> AgeIntervals:
        return AgeIntervals.fit(val["predicted_age"], val["age"], coverage, max_age)

    def judge_uncertainty(self, fitted: AgeIntervals, baseline: Baseline, predictions: pd.DataFrame,
                          judging: Judging) -> tuple[pd.DataFrame, dict]:
        from cxr_age.viz import figures

        predictions = with_intervals(predictions, fitted)
        report = {"calibrated_on": "val", "split": judging.split,
                  **interval_metrics(predictions, judging.coverage, judging.seed), "bands": fitted.describe()}
        stem = self.uncertainty_figure[0]
        figures.coverage_by_group(report["per_group"], judging.coverage,
                                  judging.folder / f"{stem}_{judging.split}.png", judging.note)
        return predictions, report

    def uncertainty_columns(self, frame: pd.DataFrame, fitted: AgeIntervals | None,
                            coverage: float | None = None) -> pd.DataFrame:
        if fitted is None:
            return frame
        return with_intervals(frame, fitted, coverage).assign(interval_coverage=coverage or fitted.coverage)

    def uncertainty_lines(self, report: dict) -> list[str]:
        split = report.get("split", "test")
        lines = [f"{split}: {report['nominal']:.0%} conformal intervals (calibrated on val) cover "
                 f"{interval_text(report['coverage'])} of true ages; mean width "
                 f"{interval_text(report['mean_width'], 1)} years"]
        lines += [f"  {label:>8}: coverage {interval_text(group['coverage'])}, width {group['mean_width']:.1f} "
                  f"years, {group['images']} images" for label, group in report["per_group"].items()]
        return lines

    def uncertainty_tables(self, report: dict) -> list[pd.DataFrame]:
        rows = [{"true age group": label, "images": group["images"], "coverage": group["coverage"]["value"],
                 "95% CI low": group["coverage"]["ci95"][0], "95% CI high": group["coverage"]["ci95"][1],
                 "mean width (years)": group["mean_width"]} for label, group in report["per_group"].items()]
        return [pd.DataFrame(rows), pd.DataFrame(report["bands"])]

    def paper_comparison(self, loss: str) -> tuple[str, float | None]:
        return PAPER_VALUES[loss]

    def coverage(self, report: dict) -> dict:
        return report["coverage"]
