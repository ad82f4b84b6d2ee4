"""What a run folder holds, named once: the files every command reads and writes, and the notice that a
demonstration run carries on every output."""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.toml"
MODEL = "model.keras"  # the best model for inference: weights and architecture, no optimizer state
HISTORY = "history.csv"
METRICS = "metrics.json"
SKIPPED = "skipped.csv"  # listed image files that are missing or cannot be decoded
REMOVED = "removed.csv"  # table rows a filter took out (implausible or censored age, lateral view, ...), with why
BACKUP = "backup"  # Keras's training backup: everything resuming needs, the optimizer state included
TENSORBOARD = "tensorboard"
CONFORMAL = "conformal.json"  # the regressor's prediction intervals, calibrated on val
CALIBRATION = "calibration.json"  # the classifier's temperature and prediction-set threshold, fitted on val

DEMO_NOTICE = "DEMONSTRATION on the embedded sample (few images, low resolution, short training): not a result"


def split_file(run_dir: Path, split: str) -> Path:
    """The table of one split's images (`train`, `val` or `test`)."""
    return run_dir / f"{split}.csv"


def predictions_file(run_dir: Path, split: str) -> Path:
    """The per-image predictions of one split."""
    return run_dir / f"predictions_{split}.csv"


def demo_note(demo: bool) -> str:
    """The small print on every figure and summary of a demonstration run; empty for a real run."""
    return DEMO_NOTICE if demo else ""
