"""Evaluate a saved run: predict its validation and test images with the best model, then write the
per-image predictions, `metrics.json` and the figures. Training ends here too, so both give the same files."""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd

from cxr_age.config import DEMO_NOTICE, Experiment
from cxr_age.io.healthy import healthy_mask
from cxr_age.io.loader import make_batches
from cxr_age.io.store import matching_store
from cxr_age.run import Run
from cxr_age.stats.bootstrap import BOOTSTRAP_DRAWS, mean_interval
from cxr_age.stats.conformal import DEFAULT_COVERAGE
from cxr_age.tasks import Judging, Task
from cxr_age.tasks.base import interval_text
from cxr_age.viz import figures

KEEP = ["image", "patient_id", "age", "group", "sex", "view", "findings", "dataset"]


def predict_split(network: keras.Model, frame: pd.DataFrame, experiment: Experiment) -> pd.DataFrame:
    """Per-image predictions of a split's table: `predicted_age` (regression) or `p_<group>` probabilities
    and `predicted_group` (classification), beside the image's own columns."""
    settings, task = experiment.train, experiment.task
    size = experiment.data.image_size
    data = make_batches(frame, task.targets(frame, settings.age_scale), size, settings.batch_size,
                        store=matching_store(frame["path"], size))
    outputs = network.predict(data, verbose=0)  # predict reads the images of each (image, target) batch
    return frame[KEEP].assign(**task.prediction_columns(outputs, settings.age_scale))


def judge_uncertainty(run: Run, val: pd.DataFrame, predictions: pd.DataFrame, judging: Judging,
                      into: Run | None = None) -> tuple[pd.DataFrame, dict]:
    """Fit how sure `run` is on its validation predictions, save it in `into` (the run itself, or an
    external validation's folder), and judge `predictions` with it: intervals (regressor) or calibration
    and prediction sets (classifier)."""
    experiment = run.experiment
    task = experiment.task
    fitted = task.fit_uncertainty(val, judging.coverage, experiment.data.max_age)
    (into or run).save_uncertainty(fitted)
    return task.judge_uncertainty(fitted, run.baseline(), predictions, judging)


def evaluate(run: Run | str | os.PathLike, splits: Sequence[str] = ("val", "test"),
             coverage: float = DEFAULT_COVERAGE) -> dict:
    """Predict `splits` of a finished run with its best model and write the predictions, `metrics.json` and
    figures into the run; return the metrics (each with its 95% patient-bootstrap interval, beside the
    baseline fitted on the training split). With the validation predictions at hand, the test split also
    gets how sure the model is: conformal prediction intervals (regressor) or temperature scaling,
    prediction sets and the expected age (classifier), fitted on val at `coverage`.

    Args:
        run: a run (or its folder) written by `cxr_age.train` or `cxr-age-train`.
        splits: which of `val` and `test` to evaluate.
        coverage: the nominal coverage of the intervals or prediction sets.

    Examples:
        >>> metrics = cxr_age.evaluate("runs/regress-demo-1a2b3c4d")
        >>> metrics["splits"]["test"]["model"]["mae"]["value"]
    """
    run = Run.open(run)
    experiment = run.experiment
    network = run.network()
    task = experiment.task
    baseline = run.baseline()
    seed, note = experiment.data.seed, experiment.note
    result = {"experiment": experiment.name, "task": task.name, "demo": experiment.train.demo, "splits": {}}
    predictions = {split: predict_split(network, run.split_images(split), experiment) for split in splits}
    val = predictions["val"] if "val" in predictions else run.predictions("val")
    if "test" in predictions and val is not None:
        predictions["test"], result["uncertainty"] = judge_uncertainty(
            run, val, predictions["test"], Judging(run.folder, "test", seed, note, coverage))
    for split, frame in predictions.items():
        run.write_predictions(split, frame)
        metrics = task.metrics(frame, baseline, seed)
        if split == "test" and experiment.data.healthy_only and task.predicts_age:
            metrics["by_health"] = mae_by_health(frame, baseline.median_age, seed)
        result["splits"][split] = metrics
        task.write_figures(frame, metrics, Judging(run.folder, split, seed, note, coverage))
    history = run.history()
    if history is not None:
        figures.loss_curves(history, run.file("loss_curves.png"), task.loss_description(experiment.train.loss),
                            note)
    run.write_metrics(result)
    return result


def mae_by_health(frame: pd.DataFrame, median_age: float, seed: int) -> dict:
    """The MAE on the healthy and on the other patients of a split (`cxr_age.io.healthy`), each with its
    patient-bootstrap 95% interval (none from fewer than two patients) and the baseline's MAE beside it."""
    healthy = healthy_mask(frame)
    result = {}
    for name, part in (("healthy", frame[healthy]), ("not_healthy", frame[~healthy])):
        errors = (part["predicted_age"] - part["age"]).abs().to_numpy(float)
        patients = part["patient_id"].to_numpy(str)
        if len(set(patients)) >= 2:
            mae = mean_interval(patients, errors, seed, BOOTSTRAP_DRAWS)
        else:
            mae = {"value": float(errors.mean()) if len(errors) else float("nan"), "ci95": [float("nan")] * 2}
        result[name] = {"images": len(part), "patients": len(set(patients)), "mae": mae,
                        "baseline_mae": float(np.abs(part["age"] - median_age).mean()) if len(part) else float("nan")}
    return result


def summary_lines(result: dict, task: Task) -> list[str]:
    """Human-readable metric lines of an evaluation (`evaluate`'s result or a `metrics.json` of `task`): each
    model figure with its interval, beside the baseline."""
    lines = [DEMO_NOTICE] if result["demo"] else []
    for split, metrics in result["splits"].items():
        base = metrics["baseline"]
        lines.append(f"{split}: {metrics['images']} images of {metrics['patients']} patients; "
                     f"baseline = {base['predicts']}")
        for name, value in metrics["model"].items():
            low, high = value["ci95"]
            unit = " years" if name in ("mae", "rmse") else ""
            lines.append(f"  {name:>20}: {value['value']:.3f}{unit} (95% CI {low:.3f} to {high:.3f}); "
                         f"baseline {base[name]:.3f}")
        lines += _per_dataset_lines(metrics, task.per_dataset_metric)
        for name, part in metrics.get("by_health", {}).items():
            low, high = part["mae"]["ci95"]
            lines.append(f"  {name.replace('_', ' '):>20}: mae {part['mae']['value']:.2f} years (95% CI {low:.2f} to "
                         f"{high:.2f}); baseline {part['baseline_mae']:.2f} ({part['images']} images of "
                         f"{part['patients']} patients)")
    if "uncertainty" in result:
        lines += task.uncertainty_lines(result["uncertainty"])
    return lines


def _per_dataset_lines(metrics: dict, metric: str) -> list[str]:
    """A run on several datasets: its figure on each source beside the pooled one above."""
    return [f"  {name:>20}: {metric} {interval_text(level[metric])}; baseline {level['baseline_' + metric]:.2f} "
            f"({level['images']} images of {level['patients']} patients)"
            for name, level in metrics.get("per_dataset", {}).items()]
