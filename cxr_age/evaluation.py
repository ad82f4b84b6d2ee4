"""Evaluate a saved run: predict its validation and test images with the best model, then write the
per-image predictions, `metrics.json` and the figures. Training ends here too, so both give the same files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

from cxr_age import figures
from cxr_age.config import Experiment, load_experiment
from cxr_age.conformal import DEFAULT_COVERAGE
from cxr_age.data.image_check import missing_files
from cxr_age.data.integrity import check_saved_splits, read_split
from cxr_age.data.pipeline import make_dataset
from cxr_age.data.store import matching_store
from cxr_age.errors import CxrAgeError
from cxr_age.losses import YearsMAE, r2_loss  # noqa: F401 - registers the custom objects of older model files
from cxr_age.run_dir import write_csv, write_json
from cxr_age.run_files import CONFIG, DEMO_NOTICE, HISTORY, METRICS, MODEL, demo_note, predictions_file, split_file
from cxr_age.tasks import get_task
from cxr_age.uncertainty import UNCERTAINTY

KEEP = ["image", "patient_id", "age", "group", "sex", "view", "findings", "dataset"]


def run_config(run_dir: Path) -> Experiment:
    """The saved settings of a run that holds a model and an intact split (checked before anything slow)."""
    if not run_dir.is_dir():
        raise CxrAgeError(f"run directory not found: {run_dir}")
    if not (run_dir / MODEL).is_file():
        raise CxrAgeError(f"{run_dir} holds no {MODEL}: train first with cxr-age-train")
    check_saved_splits(run_dir)
    return load_experiment(run_dir / CONFIG)


def load_network(run_dir: Path) -> keras.Model:
    """A run's best model, loaded in Keras safe mode (a file carrying Python code is refused)."""
    model_file = run_dir / MODEL
    try:
        return keras.saving.load_model(model_file, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - any failure to deserialise is a bad model file for the user
        if "safe_mode" in str(err):
            raise CxrAgeError(f"refused to load {model_file}: it contains Python code (e.g. a Lambda layer), which "
                              "could run anything on this machine; models are only loaded in Keras safe mode") from None
        raise CxrAgeError(f"cannot load {model_file}: {str(err).splitlines()[0]}") from None


def split_frame(run_dir: Path, split: str) -> pd.DataFrame:
    """A run's saved split (`train`, `val` or `test`), with every image file present."""
    path = split_file(run_dir, split)
    if not path.is_file():
        raise CxrAgeError(f"{run_dir} has no {split}.csv")
    frame = read_split(run_dir, split)
    missing = missing_files(frame)
    if missing.any():
        first = frame["path"][missing].iloc[0]
        raise CxrAgeError(f"{int(missing.sum())} images of {path} are missing (first: {first})")
    return frame


def _image_only(image: tf.Tensor, _: tf.Tensor) -> tf.Tensor:
    return image


def predict_split(network: keras.Model, frame: pd.DataFrame, experiment: Experiment) -> pd.DataFrame:
    """Per-image predictions of a split's table: `predicted_age` (regression) or `p_<group>` probabilities
    and `predicted_group` (classification), beside the image's own columns."""
    settings = experiment.train
    data = make_dataset(frame, settings.task, experiment.data.image_size, settings.batch_size,
                        age_scale=settings.age_scale,
                        store=matching_store(frame["path"], experiment.data.image_size))
    outputs = network.predict(data.map(_image_only), verbose=0)
    columns = get_task(settings.task).prediction_columns(outputs, settings.age_scale)
    return frame[KEEP].assign(**columns)


def _regression_figures(run_dir: Path, split: str, predictions: pd.DataFrame, metrics: dict, note: str) -> None:
    figures.predicted_vs_true(predictions, run_dir / f"predicted_vs_true_{split}.png", note)
    figures.error_by_group(predictions, run_dir / f"error_by_group_{split}.png", note)


def _classification_figures(run_dir: Path, split: str, predictions: pd.DataFrame, metrics: dict, note: str) -> None:
    aucs = {label: value["auc"] for label, value in metrics["per_group"].items()}
    figures.roc_curves(predictions, aucs, run_dir / f"roc_{split}.png", note)
    figures.confusion(predictions, run_dir / f"confusion_{split}.png", note)


FIGURES = {"regress": _regression_figures, "classify": _classification_figures}


def evaluate(run: str | Path, splits: Sequence[str] = ("val", "test"), coverage: float = DEFAULT_COVERAGE) -> dict:
    """Predict `splits` of a finished run with its best model and write the predictions, `metrics.json` and
    figures into the run; return the metrics (each with its 95% patient-bootstrap interval, beside the
    baseline fitted on the training split). With the validation predictions at hand, the test split also
    gets how sure the model is: conformal prediction intervals (regressor) or temperature scaling,
    prediction sets and the expected age (classifier), fitted on val at `coverage`.

    Args:
        run: a run folder written by `cxr_age.train` or `cxr-age-train`.
        splits: which of `val` and `test` to evaluate.
        coverage: the nominal coverage of the intervals or prediction sets.

    Examples:
        >>> metrics = cxr_age.evaluate("runs/regress-demo-1a2b3c4d")
        >>> metrics["splits"]["test"]["model"]["mae"]["value"]
    """
    run_dir = Path(run)
    experiment = run_config(run_dir)
    network = load_network(run_dir)
    task = get_task(experiment.train.task)
    train = read_split(run_dir, "train")
    note = demo_note(experiment.train.demo)
    result = {"experiment": experiment.name, "task": task.name, "demo": experiment.train.demo, "splits": {}}
    predictions = {split: predict_split(network, split_frame(run_dir, split), experiment) for split in splits}
    val = predictions["val"] if "val" in predictions else saved_predictions(run_dir, "val")
    if "test" in predictions and val is not None:
        predictions["test"], uncertainty = UNCERTAINTY[task.name](run_dir, experiment, train, val,
                                                                 predictions["test"], coverage, note)
        result["uncertainty"] = uncertainty
    for split, frame in predictions.items():
        write_csv(frame, predictions_file(run_dir, split))
        metrics = task.metrics(frame, train, experiment.data.seed)
        result["splits"][split] = metrics
        FIGURES[task.name](run_dir, split, frame, metrics, note)
    history = run_dir / HISTORY
    if history.is_file():
        loss_name = task.loss_description(experiment.train.loss)
        figures.loss_curves(pd.read_csv(history), run_dir / "loss_curves.png", loss_name, note)
    write_json(result, run_dir / METRICS)
    return result


def saved_predictions(run_dir: Path, split: str) -> pd.DataFrame | None:
    """A split's `predictions_<split>.csv` as written by `evaluate` (text columns kept as text), or None."""
    path = predictions_file(run_dir, split)
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype={"patient_id": str, "sex": str, "view": str, "findings": str, "dataset": str},
                       keep_default_na=False)


def summary_lines(result: dict) -> list[str]:
    """Human-readable metric lines: each model figure with its interval, beside the baseline."""
    lines = []
    if result["demo"]:
        lines.append(DEMO_NOTICE)
    for split, metrics in result["splits"].items():
        base = metrics["baseline"]
        lines.append(f"{split}: {metrics['images']} images of {metrics['patients']} patients; "
                     f"baseline = {base['predicts']}")
        for name, value in metrics["model"].items():
            low, high = value["ci95"]
            unit = " years" if name in ("mae", "rmse") else ""
            lines.append(f"  {name:>20}: {value['value']:.3f}{unit} (95% CI {low:.3f} to {high:.3f}); "
                         f"baseline {base[name]:.3f}")
        lines += _per_dataset_lines(metrics)
    if "uncertainty" in result:
        lines += uncertainty_lines(result["uncertainty"])
    return lines


def _per_dataset_lines(metrics: dict) -> list[str]:
    """A run on several datasets: its figure on each source beside the pooled one above."""
    lines = []
    for name, level in metrics.get("per_dataset", {}).items():
        metric = "mae" if "mae" in level else "accuracy"
        lines.append(f"  {name:>20}: {metric} {_value(level[metric])}; baseline {level['baseline_' + metric]:.2f} "
                     f"({level['images']} images of {level['patients']} patients)")
    return lines


def _value(metric: dict, digits: int = 2) -> str:
    low, high = metric["ci95"]
    return f"{metric['value']:.{digits}f} (95% CI {low:.{digits}f} to {high:.{digits}f})"


def uncertainty_lines(report: dict) -> list[str]:
    """How sure the model is on the test split (or external images), in words (intervals or calibration,
    fitted on val)."""
    split = report.get("split", "test")
    if "coverage" in report:
        lines = [f"{split}: {report['nominal']:.0%} conformal intervals (calibrated on val) cover "
                 f"{_value(report['coverage'])} of true ages; mean width {_value(report['mean_width'], 1)} years"]
        lines += [f"  {label:>8}: coverage {_value(group['coverage'])}, width {group['mean_width']:.1f} years, "
                  f"{group['images']} images" for label, group in report["per_group"].items()]
        return lines
    sets = report["sets"]
    return [f"{split}: expected calibration error {_value(report['ece_before'], 3)} before and "
            f"{_value(report['ece_after'], 3)} after temperature scaling (T = {report['temperature']:.2f}, fitted "
            "on val)",
            f"{split}: {sets['nominal']:.0%} prediction sets cover {_value(sets['coverage'])} of true groups with "
            f"{_value(sets['mean_size'])} groups on average",
            f"{split}: expected age (probability-weighted group midpoints) MAE {_value(report['expected_age_mae'], 1)} "
            f"years; median baseline {report['median_baseline_mae']:.1f}"]
