"""The paper's classifier (Karargyris et al., SPIE 2019): a softmax over the nine age groups, trained on
cross-entropy and judged by one-vs-rest AUC beside the training majority group; calibrated by temperature
scaling (Guo et al. 2017) with adaptive prediction sets (Romano et al. 2020) fitted on the validation split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.ages import GROUP_LABELS, N_GROUPS, NO_GROUP
from cxr_age.stats.bootstrap import BOOTSTRAP_DRAWS, mean_interval, weighted_interval
from cxr_age.stats.calibration import Calibration, expected_age, reliability, scale, weighted_ece
from cxr_age.stats.metrics import classification_metrics
from cxr_age.tasks.base import Baseline, Judging, Task, interval_text

PAPER_CLASSIFY = "nine one-vs-rest ROC curves; the text gives no AUC values to compare with"


def _set_labels(sets: np.ndarray) -> list[str]:
    """Each image's prediction set as its group labels joined by `|`."""
    return ["|".join(np.asarray(GROUP_LABELS)[row]) for row in sets]


def _probabilities(frame: pd.DataFrame) -> np.ndarray:
    return frame[[f"p_{label}" for label in GROUP_LABELS]].to_numpy(float)


class Classification(Task):
    """A softmax over the nine age groups (the paper's classifier)."""

    def targets(self, frame: pd.DataFrame, age_scale: float = 90.0) -> np.ndarray:
        groups = frame["group"].to_numpy()
        if (groups == NO_GROUP).any():
            raise CxrAgeError(f"{int((groups == NO_GROUP).sum())} images are older than 90, outside the nine age "
                              "groups; classification needs `max_age` 90 or lower")
        return np.eye(N_GROUPS, dtype=np.float32)[groups]

    def decode(self, outputs: np.ndarray, age_scale: float = 90.0) -> np.ndarray:
        return np.asarray(GROUP_LABELS)[np.asarray(outputs).argmax(axis=1)]

    def prediction_columns(self, outputs: np.ndarray, age_scale: float = 90.0) -> dict[str, np.ndarray]:
        columns = {f"p_{label}": outputs[:, g] for g, label in enumerate(GROUP_LABELS)}
        return {**columns, "predicted_group": self.decode(outputs, age_scale)}

    def correct(self, predicted: np.ndarray, frame: pd.DataFrame, tolerance: float) -> np.ndarray:
        return predicted == np.asarray(GROUP_LABELS)[frame["group"].to_numpy()]

    def correct_means(self, tolerance: float) -> str:
        return "predicted group = true group"

    def saliency_groups(self, group: int | str | None, n: int,
                        outputs: Callable[[], np.ndarray]) -> np.ndarray | None:
        if group is None:
            return outputs().argmax(axis=1)
        if isinstance(group, str):
            if group not in GROUP_LABELS:
                raise CxrAgeError(f"unknown age group {group!r}; choose one of {', '.join(GROUP_LABELS)}")
            return np.full(n, GROUP_LABELS.index(group))
        if not 0 <= int(group) < N_GROUPS:
            raise CxrAgeError(f"age group index {group} is outside 0..{N_GROUPS - 1}")
        return np.full(n, int(group))

    def metrics(self, predictions: pd.DataFrame, baseline: Baseline, seed: int) -> dict:
        return classification_metrics(predictions, baseline.majority_group, seed)

    def keras_loss(self, loss: str) -> Any:
        self.check_loss(loss)
        return "categorical_crossentropy"

    def keras_metrics(self, age_scale: float) -> list:
        import keras

        return ["categorical_accuracy", keras.metrics.AUC(multi_label=True, num_labels=N_GROUPS, name="auc")]

    def loss_description(self, loss: str) -> str:
        return "cross-entropy"

    def write_figures(self, predictions: pd.DataFrame, metrics: dict, judging: Judging) -> None:
        from cxr_age.viz import figures

        (roc, _), (confusion, _) = self.figure_files(judging.split)
        aucs = {label: value["auc"] for label, value in metrics["per_group"].items()}
        figures.roc_curves(predictions, aucs, judging.folder / roc, judging.note)
        figures.confusion(predictions, judging.folder / confusion, judging.note)

    @property
    def uncertainty_type(self) -> type:
        return Calibration

    def fit_uncertainty(self, val: pd.DataFrame, coverage: float, max_age: float) -> Calibration:
        return Calibration.fit(_probabilities(val), val["group"].to_numpy(int), coverage)

    def judge_uncertainty(self, fitted: Calibration, baseline: Baseline, predictions: pd.DataFrame,
                          judging: Judging) -> tuple[pd.DataFrame, dict]:
        """ECE before and after scaling, set coverage and size, and the expected age's MAE beside the
        training median's, each with a patient-bootstrap 95% interval; writes the reliability diagram."""
        from cxr_age.viz import figures

        raw = _probabilities(predictions)
        scaled = scale(raw, fitted.temperature)
        truth = predictions["group"].to_numpy(int)
        sets = fitted.sets(raw)
        ages = expected_age(scaled)
        predictions = predictions.assign(expected_age=ages, prediction_set=_set_labels(sets))
        patients = predictions["patient_id"].to_numpy(str)
        true_age = predictions["age"].to_numpy(float)
        seed, draws = judging.seed, BOOTSTRAP_DRAWS
        report = {
            "calibrated_on": "val", "split": judging.split, "temperature": fitted.temperature,
            "ece_before": weighted_interval(patients, weighted_ece(raw, truth), seed, draws),
            "ece_after": weighted_interval(patients, weighted_ece(scaled, truth), seed, draws),
            "sets": {"nominal": judging.coverage,
                     "coverage": mean_interval(patients, sets[np.arange(len(truth)), truth], seed, draws),
                     "mean_size": mean_interval(patients, sets.sum(axis=1), seed, draws)},
            "expected_age_mae": mean_interval(patients, np.abs(ages - true_age), seed, draws),
            "median_baseline_mae": float(np.abs(true_age - baseline.median_age).mean()),
        }
        figures.reliability_diagram(reliability(raw, truth), reliability(scaled, truth), fitted.temperature,
                                    judging.folder / f"{self.uncertainty_figure[0]}_{judging.split}.png",
                                    judging.note)
        return predictions, report

    def uncertainty_columns(self, frame: pd.DataFrame, fitted: Calibration | None,
                            coverage: float | None = None) -> pd.DataFrame:
        if fitted is None:
            return frame
        raw = _probabilities(frame)
        return frame.assign(expected_age=expected_age(scale(raw, fitted.temperature)),
                            prediction_set=_set_labels(fitted.sets(raw)))

    def uncertainty_lines(self, report: dict) -> list[str]:
        split = report.get("split", "test")
        sets = report["sets"]
        return [f"{split}: expected calibration error {interval_text(report['ece_before'], 3)} before and "
                f"{interval_text(report['ece_after'], 3)} after temperature scaling (T = {report['temperature']:.2f}, "
                "fitted on val)",
                f"{split}: {sets['nominal']:.0%} prediction sets cover {interval_text(sets['coverage'])} of true "
                f"groups with {interval_text(sets['mean_size'])} groups on average",
                f"{split}: expected age (probability-weighted group midpoints) MAE "
                f"{interval_text(report['expected_age_mae'], 1)} years; median baseline "
                f"{report['median_baseline_mae']:.1f}"]

    def uncertainty_tables(self, report: dict) -> list[pd.DataFrame]:
        return []

    def paper_comparison(self, loss: str) -> tuple[str, float | None]:
        return PAPER_CLASSIFY, None

    def coverage(self, report: dict) -> dict:
        return report["sets"]["coverage"]
