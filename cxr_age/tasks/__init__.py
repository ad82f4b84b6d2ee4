"""The paper's two tasks, each one object (Karargyris et al., SPIE 2019), after keras-hub's Task: the head it
puts on the backbone, how it is trained, how its outputs read as predictions, and how they are judged.

- `REGRESS`: DenseNet169, a sigmoid unit on age / 90, mean squared error or 1 - R² (`tasks.regression`).
- `CLASSIFY`: DenseNet201, a softmax over the nine age groups, cross-entropy (`tasks.classification`).

A task name from a command line or a config file becomes its object once, through `get_task` (the
experiment's `task` property); everything downstream takes the object. TensorFlow and matplotlib are
imported only by the methods that need them, so reading settings stays fast.
"""

from __future__ import annotations

from cxr_age.errors import CxrAgeError
from cxr_age.io.ages import N_GROUPS
from cxr_age.nets.head import Head
from cxr_age.tasks.base import Baseline, Judging, Task
from cxr_age.tasks.classification import Classification
from cxr_age.tasks.regression import Regression

__all__ = ["CLASSIFY", "LOSSES", "REGRESS", "TASKS", "TASK_NAMES", "Baseline", "Judging", "Task", "get_task"]

REGRESS = Regression(
    name="regress", paper_backbone="densenet169", paper_config="regress_mse", losses=("mse", "r2"),
    head=Head("regress", "age", 1, "sigmoid"), headline_metric="mae", headline_unit=" years", predicts_age=True,
    figures=(("predicted_vs_true", "predicted against true age"), ("error_by_group", "absolute error per age group")),
    uncertainty_figure=("coverage_by_age", "interval coverage and width per true age group"),
    per_dataset_metric="mae",
)
CLASSIFY = Classification(
    name="classify", paper_backbone="densenet201", paper_config="classify", losses=("crossentropy",),
    head=Head("classify", "age_group", N_GROUPS, "softmax"), headline_metric="macro_auc", headline_unit="",
    predicts_age=False,
    figures=(("roc", "one-vs-rest ROC curves per age group"), ("confusion", "confusion matrix")),
    uncertainty_figure=("reliability", "reliability diagram before and after scaling"),
    per_dataset_metric="accuracy",
)
TASKS: dict[str, Task] = {task.name: task for task in (REGRESS, CLASSIFY)}
TASK_NAMES = tuple(TASKS)
LOSSES = tuple(loss for task in TASKS.values() for loss in task.losses)


def get_task(name: str | None) -> Task:
    """The task called `name` (`regress` or `classify`)."""
    if name not in TASKS:
        raise CxrAgeError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    return TASKS[name]
