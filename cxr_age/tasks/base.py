"""What every task is: the contract between the paper's two tasks and the rest of the package. A `Task`
owns everything that differs between regression and classification: the network's head, the loss and
targets, how outputs read as predictions, the metrics and baseline, the figures, how sure the model is, and
the task's parts of the report. Everything downstream holds a `Task` object and asks it; nothing looks a
task up by name or keeps tables keyed by it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.nets.head import Head
from cxr_age.settings import TrainConfig


@dataclass(frozen=True)
class Judging:
    """Where and how a set of predictions is judged: the folder its files go to, the name of the split
    (`val`, `test` or `external`), the bootstrap seed, the demonstration note and the nominal coverage of
    the intervals or prediction sets."""

    folder: Path
    split: str = "test"
    seed: int = 0
    note: str = ""
    coverage: float = 0.9


@dataclass(frozen=True)
class Baseline:
    """The trivial predictions a model must beat, fitted on its training split: the median age (the
    regressor's baseline, and the classifier's expected-age baseline) and the majority age group."""

    median_age: float
    majority_group: int

    @classmethod
    def of(cls, train: pd.DataFrame) -> Baseline:
        return cls(float(train["age"].median()), int(train["group"].mode()[0]))


@dataclass(frozen=True)
class Task:
    """One task: its name on the command line, the paper's backbone and experiment config, its losses (the
    first is the default), its output layer, the metric a summary leads with, and its figures."""

    name: str
    paper_backbone: str
    paper_config: str
    losses: tuple[str, ...]
    head: Head
    headline_metric: str
    headline_unit: str
    predicts_age: bool
    figures: tuple[tuple[str, str], ...]  # (file stem, caption) of each split's figures, `<stem>_<split>.png`
    uncertainty_figure: tuple[str, str]  # (file stem, caption) of the uncertainty figure
    per_dataset_metric: str  # the figure a run on several datasets reports per dataset

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def figure_files(self, split: str) -> list[tuple[str, str]]:
        """(file name, caption) of the figures `write_figures` makes of `split`."""
        return [(f"{stem}_{split}.png", f"{caption}, {split} split") for stem, caption in self.figures]

    def check_loss(self, loss: str) -> str:
        """`loss` if this task trains on it, else a CxrAgeError naming the ones it does."""
        if loss not in self.losses:
            raise CxrAgeError(f"loss {loss} does not fit {self.name}; choose {' or '.join(self.losses)}")
        return loss

    def compile(self, model: Any, settings: TrainConfig, run_eagerly: bool = False) -> None:
        """Adam, the configured loss, and metrics in the units a reader wants (years; AUC and accuracy).
        `run_eagerly` skips graph tracing: slower steps, but no minute-long trace for a single step."""
        import keras

        model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss=self.keras_loss(settings.loss),
                      metrics=self.keras_metrics(settings.age_scale), run_eagerly=run_eagerly,
                      jit_compile="auto" if settings.jit_compile is None else settings.jit_compile)

    def targets(self, frame: pd.DataFrame, age_scale: float = 90.0) -> np.ndarray:
        """The training targets of the rows of `frame`."""
        raise NotImplementedError

    def decode(self, outputs: np.ndarray, age_scale: float = 90.0) -> np.ndarray:
        """Model outputs as predictions: ages in years, or age-group labels."""
        raise NotImplementedError

    def prediction_columns(self, outputs: np.ndarray, age_scale: float = 90.0) -> dict[str, np.ndarray]:
        """The per-image columns a prediction table gets from the model outputs."""
        raise NotImplementedError

    def correct(self, predicted: np.ndarray, frame: pd.DataFrame, tolerance: float) -> np.ndarray:
        """Whether each prediction counts as correct for the saliency analysis's correct/wrong split."""
        raise NotImplementedError

    def correct_means(self, tolerance: float) -> str:
        """What `correct` means, in words."""
        raise NotImplementedError

    def saliency_groups(self, group: int | str | None, n: int,
                        outputs: Callable[[], np.ndarray]) -> np.ndarray | None:
        """The age group each of `n` maps explains: `group` (a label or index) for every image, else each
        image's predicted group (from `outputs`); None for the regressor, whose maps explain its age."""
        raise NotImplementedError

    def metrics(self, predictions: pd.DataFrame, baseline: Baseline, seed: int) -> dict:
        """Metrics of a split's predictions with patient-bootstrap intervals, beside the baseline fitted on
        the training split."""
        raise NotImplementedError

    def keras_loss(self, loss: str) -> Any:
        """The Keras loss for `loss`."""
        raise NotImplementedError

    def keras_metrics(self, age_scale: float) -> list:
        """The metrics Keras logs per epoch, in the units a reader wants."""
        raise NotImplementedError

    def loss_description(self, loss: str) -> str:
        """The loss as a figure's axis label."""
        raise NotImplementedError

    def write_figures(self, predictions: pd.DataFrame, metrics: dict, judging: Judging) -> None:
        """The figures of one split's predictions, into `judging.folder`."""
        raise NotImplementedError

    @property
    def uncertainty_type(self) -> type:
        """The class of what `fit_uncertainty` returns (with `save` and `load`)."""
        raise NotImplementedError

    def fit_uncertainty(self, val: pd.DataFrame, coverage: float, max_age: float) -> Any:
        """How sure the model is, fitted on the validation predictions at `coverage`."""
        raise NotImplementedError

    def judge_uncertainty(self, fitted: Any, baseline: Baseline, predictions: pd.DataFrame,
                          judging: Judging) -> tuple[pd.DataFrame, dict]:
        """`predictions` with their intervals or sets, and how well they keep their promise (each figure with
        a patient-bootstrap 95% interval); writes the task's uncertainty figure."""
        raise NotImplementedError

    def uncertainty_columns(self, frame: pd.DataFrame, fitted: Any, coverage: float | None = None) -> pd.DataFrame:
        """Decoded predictions with how sure the model is (the fitted intervals or calibration)."""
        raise NotImplementedError

    def uncertainty_lines(self, report: dict) -> list[str]:
        """The uncertainty report in words."""
        raise NotImplementedError

    def uncertainty_tables(self, report: dict) -> list[pd.DataFrame]:
        """The uncertainty report's tables, for the report page."""
        raise NotImplementedError

    def paper_comparison(self, loss: str) -> tuple[str, float | None]:
        """What the paper reports for this task and loss, and its value where it gives one, beside which a
        run's figure is shown."""
        raise NotImplementedError

    def coverage(self, report: dict) -> dict:
        """The achieved coverage (value and interval) of the intervals or prediction sets in `report`."""
        raise NotImplementedError


def interval_text(metric: dict, digits: int = 2) -> str:
    """`value (95% CI low to high)`."""
    low, high = metric["ci95"]
    return f"{metric['value']:.{digits}f} (95% CI {low:.{digits}f} to {high:.{digits}f})"
