"""The paper's two tasks, each described once (Karargyris et al., SPIE 2019): what the network outputs, how it
is trained, how its outputs read as predictions, and which metrics and baseline judge it.

- `regress`: DenseNet169, a sigmoid unit on age / 90, trained on mean squared error (round 1) or 1 - R² over
  the batch (round 2); judged by mean absolute error in years beside the training median age.
- `classify`: DenseNet201, a softmax over the nine age groups, trained on cross-entropy; judged by one-vs-rest
  AUC beside the training majority group.

TensorFlow is imported only by the methods that build Keras objects, so reading settings stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cxr_age.data.ages import GROUP_LABELS, N_GROUPS, NO_GROUP
from cxr_age.errors import CxrAgeError
from cxr_age.metrics import classification_metrics, regression_metrics


@dataclass(frozen=True)
class Task:
    """One task: its name on the command line, the paper's backbone and experiment config, its losses (the
    first is the default), its output layer, and the metric a summary leads with."""

    name: str
    paper_backbone: str
    paper_config: str
    losses: tuple[str, ...]
    output_layer: str
    units: int
    activation: str
    headline_metric: str
    headline_unit: str
    predicts_age: bool

    def check_loss(self, loss: str) -> str:
        """`loss` if this task trains on it, else a CxrAgeError naming the ones it does."""
        if loss not in self.losses:
            raise CxrAgeError(f"loss {loss} does not fit {self.name}; choose {' or '.join(self.losses)}")
        return loss

    def targets(self, frame: pd.DataFrame, age_scale: float) -> np.ndarray:
        """The training targets of the rows of `frame`."""
        raise NotImplementedError

    def decode(self, outputs: np.ndarray, age_scale: float) -> np.ndarray:
        """Model outputs as predictions: ages in years, or age-group labels."""
        raise NotImplementedError

    def prediction_columns(self, outputs: np.ndarray, age_scale: float) -> dict[str, np.ndarray]:
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

    def metrics(self, predictions: pd.DataFrame, train: pd.DataFrame, seed: int) -> dict:
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


class Regression(Task):
    """Age / `age_scale` through a sigmoid (the paper's regressor)."""

    def targets(self, frame: pd.DataFrame, age_scale: float) -> np.ndarray:
        return np.clip(frame["age"].to_numpy(np.float32) / np.float32(age_scale), 0.0, 1.0)

    def decode(self, outputs: np.ndarray, age_scale: float) -> np.ndarray:
        return np.asarray(outputs).reshape(-1) * age_scale

    def prediction_columns(self, outputs: np.ndarray, age_scale: float) -> dict[str, np.ndarray]:
        return {"predicted_age": self.decode(outputs, age_scale)}

    def correct(self, predicted: np.ndarray, frame: pd.DataFrame, tolerance: float) -> np.ndarray:
        return np.abs(predicted - frame["age"].to_numpy()) <= tolerance

    def correct_means(self, tolerance: float) -> str:
        return f"|predicted - true age| <= {tolerance:g} years"

    def saliency_groups(self, group: int | str | None, n: int,
                        outputs: Callable[[], np.ndarray]) -> np.ndarray | None:
        if group is not None:
            raise CxrAgeError("group= chooses a classifier's target; a regressor's maps explain its age")
        return None

    def metrics(self, predictions: pd.DataFrame, train: pd.DataFrame, seed: int) -> dict:
        return regression_metrics(predictions, float(train["age"].median()), seed)

    def keras_loss(self, loss: str) -> Any:
        from cxr_age.losses import r2_loss

        return {"mse": "mean_squared_error", "r2": r2_loss}[self.check_loss(loss)]

    def keras_metrics(self, age_scale: float) -> list:
        import keras

        from cxr_age.losses import YearsMAE

        return [YearsMAE(age_scale), keras.metrics.R2Score(name="r2")]

    def loss_description(self, loss: str) -> str:
        return {"mse": "mean squared error (age / 90)", "r2": "1 - R²"}[loss]


class Classification(Task):
    """A softmax over the nine age groups (the paper's classifier)."""

    def targets(self, frame: pd.DataFrame, age_scale: float) -> np.ndarray:
        groups = frame["group"].to_numpy()
        if (groups == NO_GROUP).any():
            raise CxrAgeError(
                f"{int((groups == NO_GROUP).sum())} images are older than 90, outside the nine age groups; "
                "classification needs --max-age 90 or lower"
            )
        return np.eye(N_GROUPS, dtype=np.float32)[groups]

    def decode(self, outputs: np.ndarray, age_scale: float) -> np.ndarray:
        return np.asarray(GROUP_LABELS)[np.asarray(outputs).argmax(axis=1)]

    def prediction_columns(self, outputs: np.ndarray, age_scale: float) -> dict[str, np.ndarray]:
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

    def metrics(self, predictions: pd.DataFrame, train: pd.DataFrame, seed: int) -> dict:
        return classification_metrics(predictions, int(train["group"].mode()[0]), seed)

    def keras_loss(self, loss: str) -> Any:
        self.check_loss(loss)
        return "categorical_crossentropy"

    def keras_metrics(self, age_scale: float) -> list:
        import keras

        return ["categorical_accuracy", keras.metrics.AUC(multi_label=True, num_labels=N_GROUPS, name="auc")]

    def loss_description(self, loss: str) -> str:
        return "cross-entropy"


REGRESS = Regression(name="regress", paper_backbone="densenet169", paper_config="regress_mse", losses=("mse", "r2"),
                     output_layer="age", units=1, activation="sigmoid", headline_metric="mae",
                     headline_unit=" years", predicts_age=True)
CLASSIFY = Classification(name="classify", paper_backbone="densenet201", paper_config="classify",
                          losses=("crossentropy",), output_layer="age_group", units=N_GROUPS, activation="softmax",
                          headline_metric="macro_auc", headline_unit="", predicts_age=False)
TASKS: dict[str, Task] = {task.name: task for task in (REGRESS, CLASSIFY)}
TASK_NAMES = tuple(TASKS)
LOSSES = tuple(loss for task in TASKS.values() for loss in task.losses)


def get_task(name: str | None) -> Task:
    """The task called `name` (`regress` or `classify`)."""
    if name not in TASKS:
        raise CxrAgeError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    return TASKS[name]
