"""Evaluate a saved run: predict its validation and test images with the best model, then write the
per-image predictions, `metrics.json` and the figures. Training ends here too, so both give the same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxr_age import figures
from cxr_age.config import ExperimentConfig, load_experiment
from cxr_age.data.ages import GROUP_LABELS
from cxr_age.data.image_check import missing_files
from cxr_age.data.integrity import check_saved_splits, read_split
from cxr_age.data.pipeline import make_dataset
from cxr_age.data.store import matching_store
from cxr_age.errors import CxrAgeError
from cxr_age.losses import YearsMAE, r2_loss  # noqa: F401 - registers the custom objects for loading
from cxr_age.metrics import classification_metrics, regression_metrics
from cxr_age.quiet_tf import keras, tf
from cxr_age.run_dir import write_csv, write_json

KEEP = ["image", "patient_id", "age", "group", "sex", "view", "findings"]


def run_config(run_dir: Path) -> ExperimentConfig:
    """The saved settings of a run that holds a model and an intact split (checked before anything slow)."""
    if not run_dir.is_dir():
        raise CxrAgeError(f"run directory not found: {run_dir}")
    if not (run_dir / "model.keras").is_file():
        raise CxrAgeError(f"{run_dir} holds no model.keras: train first with cxr-age-train")
    check_saved_splits(run_dir)
    return load_experiment(run_dir / "config.toml")


def load_run(run_dir: Path) -> tuple[ExperimentConfig, keras.Model]:
    """The saved settings and best model of a run; the model is loaded in Keras safe mode."""
    config = run_config(run_dir)
    model_file = run_dir / "model.keras"
    try:
        model = keras.saving.load_model(model_file, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - any failure to deserialise is a bad model file for the user
        if "safe_mode" in str(err):
            raise CxrAgeError(f"refused to load {model_file}: it contains Python code (e.g. a Lambda layer), which "
                              "could run anything on this machine; models are only loaded in Keras safe mode") from None
        raise CxrAgeError(f"cannot load {model_file}: {str(err).splitlines()[0]}") from None
    return config, model


def split_frame(run_dir: Path, split: str) -> pd.DataFrame:
    """A run's saved split (`train`, `val` or `test`), with every image file present."""
    path = run_dir / f"{split}.csv"
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


def predicted_values(outputs: np.ndarray, task: str, age_scale: float) -> np.ndarray:
    """Model outputs as predictions: ages in years (regressor) or age-group labels (classifier)."""
    if task == "regress":
        return outputs.reshape(-1) * age_scale
    return np.asarray(GROUP_LABELS)[outputs.argmax(axis=1)]


def predict(model: keras.Model, frame: pd.DataFrame, config: ExperimentConfig) -> pd.DataFrame:
    """Per-image predictions: `predicted_age` (regression) or `p_<group>` probabilities (classification)."""
    task = config.train.task
    data = make_dataset(frame, task, config.data.image_size, config.train.batch_size,
                        age_scale=config.train.age_scale, store=matching_store(frame["path"], config.data.image_size))
    outputs = model.predict(data.map(_image_only), verbose=0)
    result = frame[KEEP].copy()
    predicted = predicted_values(outputs, task, config.train.age_scale)
    if task == "regress":
        result["predicted_age"] = predicted
    else:
        for g, label in enumerate(GROUP_LABELS):
            result[f"p_{label}"] = outputs[:, g]
        result["predicted_group"] = predicted
    return result


def _figures(run_dir: Path, split: str, predictions: pd.DataFrame, metrics: dict, task: str, note: str) -> None:
    if task == "regress":
        figures.predicted_vs_true(predictions, run_dir / f"predicted_vs_true_{split}.png", note)
        figures.error_by_group(predictions, run_dir / f"error_by_group_{split}.png", note)
    else:
        aucs = {label: value["auc"] for label, value in metrics["per_group"].items()}
        figures.roc_curves(predictions, aucs, run_dir / f"roc_{split}.png", note)
        figures.confusion(predictions, run_dir / f"confusion_{split}.png", note)


def demo_note(demo: bool) -> str:
    """The small print on every figure of a demonstration run."""
    return "DEMONSTRATION on the embedded sample: not a result" if demo else ""


def evaluate_run(run_dir: Path, splits: tuple[str, ...] = ("val", "test")) -> dict:
    """Predict `splits` with the run's best model and write predictions, metrics.json and figures."""
    config, model = load_run(run_dir)
    task = config.train.task
    train = read_split(run_dir, "train")
    note = demo_note(config.train.demo)
    result = {"experiment": config.name, "task": task, "demo": config.train.demo, "splits": {}}
    for split in splits:
        predictions = predict(model, split_frame(run_dir, split), config)
        write_csv(predictions, run_dir / f"predictions_{split}.csv")
        if task == "regress":
            metrics = regression_metrics(predictions, float(train["age"].median()), config.data.seed)
        else:
            metrics = classification_metrics(predictions, int(train["group"].mode()[0]), config.data.seed)
        result["splits"][split] = metrics
        _figures(run_dir, split, predictions, metrics, task, note)
    history = run_dir / "history.csv"
    if history.is_file():
        loss_name = {"mse": "mean squared error (age / 90)", "r2": "1 - R²"}.get(config.train.loss, "cross-entropy")
        figures.loss_curves(pd.read_csv(history), run_dir / "loss_curves.png", loss_name, note)
    write_json(result, run_dir / "metrics.json")
    return result


def summary_lines(result: dict) -> list[str]:
    """Human-readable metric lines: each model figure with its interval, beside the baseline."""
    lines = []
    if result["demo"]:
        lines.append("DEMONSTRATION on the embedded sample (few images, low resolution): a smoke signal, not a result")
    for split, metrics in result["splits"].items():
        base = metrics["baseline"]
        lines.append(f"{split}: {metrics['images']} images of {metrics['patients']} patients; "
                     f"baseline = {base['predicts']}")
        for name, value in metrics["model"].items():
            low, high = value["ci95"]
            unit = " years" if name in ("mae", "rmse") else ""
            lines.append(f"  {name:>20}: {value['value']:.3f}{unit} (95% CI {low:.3f} to {high:.3f}); "
                         f"baseline {base[name]:.3f}")
    return lines
