"""Figures of a run: the paper's loss curves and ROC curves, plus predicted-vs-true age, error per age
group, the confusion matrix and the age-gap figures (Bland-Altman, gap against age, gap per finding). Each is
written as a PNG, atomically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, roc_curve

from cxr_age.io.ages import GROUP_LABELS, N_GROUPS
from cxr_age.io.files import write_atomic


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], dpi: float | None = None,
               layout: str | None = None, **subplots: Any) -> tuple[Figure, Any]:
    """A figure and its axes made without pyplot: no backend is chosen and no global figure is kept, so the
    library leaves a notebook's inline plotting as it was."""
    figure = Figure(figsize=figsize, dpi=dpi, layout=layout)
    return figure, figure.subplots(nrows, ncols, **subplots)


def save_figure(figure: Figure, path: Path, note: str) -> Path:
    """Write `figure` as a PNG (atomically) with `note` in small print at the bottom."""
    if note:
        figure.text(0.01, 0.005, note, fontsize=7, color="gray")
    if figure.get_layout_engine() is None:
        figure.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    return path


def loss_curves(history: pd.DataFrame, path: Path, loss_name: str, note: str = "") -> Path:
    """Training and validation loss per epoch (the paper's regression figures)."""
    figure, axes = new_figure(figsize=(6, 4))
    epochs = history["epoch"] + 1
    axes.plot(epochs, history["loss"], marker="o", label="training")
    axes.plot(epochs, history["val_loss"], marker="o", label="validation")
    best = history["val_loss"].idxmin()
    axes.set_title(f"minimum validation loss {history['val_loss'][best]:.4f} (epoch {epochs[best]})", fontsize=10)
    axes.set_xlabel("epoch")
    axes.set_ylabel(loss_name)
    axes.legend()
    return save_figure(figure, path, note)


def _against_identity(axes: Any, limit: float, label: str, xlabel: str, ylabel: str) -> None:
    """The dashed diagonal of perfect agreement on square axes from 0 to `limit`, labelled, with a legend."""
    axes.plot([0, limit], [0, limit], color="gray", linestyle="--", label=label)
    axes.set_xlim(0, limit)
    axes.set_ylim(0, limit)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.legend(loc="upper left")


def predicted_vs_true(frame: pd.DataFrame, path: Path, note: str = "") -> Path:
    figure, axes = new_figure(figsize=(5, 5))
    axes.scatter(frame["age"], frame["predicted_age"], s=6, alpha=0.4)
    _against_identity(axes, 90, "perfect", "true age (years)", "predicted age (years)")
    return save_figure(figure, path, note)


def error_by_group(frame: pd.DataFrame, path: Path, note: str = "") -> Path:
    figure, axes = new_figure(figsize=(7, 4))
    errors = [np.abs(part["predicted_age"] - part["age"]).to_numpy() for _, part in frame.groupby("group")]
    present = sorted(frame["group"].unique())
    axes.boxplot(errors, showfliers=False)
    axes.set_xticks(range(1, len(present) + 1), [f"{GROUP_LABELS[g]}\nn={len(e)}" for g, e in zip(present, errors)],
                    fontsize=8)
    axes.set_xlabel("true age group")
    axes.set_ylabel("absolute error (years)")
    return save_figure(figure, path, note)


def roc_curves(frame: pd.DataFrame, aucs: dict[str, float | None], path: Path, note: str = "") -> Path:
    """Nine one-vs-rest ROC curves with their AUCs on one plot (the paper's classification figure)."""
    figure, axes = new_figure(figsize=(6, 6))
    colours = colormaps["viridis"](np.linspace(0, 0.95, N_GROUPS))
    for g, label in enumerate(GROUP_LABELS):
        if aucs.get(label) is None:
            continue
        fpr, tpr, _ = roc_curve(frame["group"] == g, frame[f"p_{label}"])
        count = int((frame["group"] == g).sum())
        axes.plot(fpr, tpr, color=colours[g], label=f"{label} (n={count}): AUC {aucs[label]:.2f}")
    axes.plot([0, 1], [0, 1], color="gray", linestyle="--")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.legend(loc="lower right", fontsize=8)
    return save_figure(figure, path, note)


def confusion(frame: pd.DataFrame, path: Path, note: str = "") -> Path:
    predicted = frame[[f"p_{label}" for label in GROUP_LABELS]].to_numpy().argmax(axis=1)
    counts = confusion_matrix(frame["group"], predicted, labels=range(N_GROUPS))
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = new_figure(figsize=(6.5, 5.5))
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(N_GROUPS):
        for j in range(N_GROUPS):
            if counts[i, j]:
                axes.text(j, i, counts[i, j], ha="center", va="center", fontsize=7,
                          color="white" if shares[i, j] > 0.5 else "black")
    axes.set_xticks(range(N_GROUPS), GROUP_LABELS, rotation=45, fontsize=8)
    axes.set_yticks(range(N_GROUPS), GROUP_LABELS, fontsize=8)
    axes.set_xlabel("predicted group")
    axes.set_ylabel("true group")
    figure.colorbar(image, ax=axes, label="share of the true group")
    return save_figure(figure, path, note)


def bland_altman(frame: pd.DataFrame, path: Path, note: str = "") -> Path:
    """Bland-Altman plot (Bland & Altman 1986): difference against mean of predicted and true age, with the
    mean difference (bias) and the 95% limits of agreement (bias +- 1.96 SD)."""
    mean = (frame["predicted_age"] + frame["age"]) / 2
    difference = frame["predicted_age"] - frame["age"]
    bias, spread = float(difference.mean()), float(difference.std(ddof=1)) if len(frame) > 1 else 0.0
    figure, axes = new_figure(figsize=(6.5, 4.5))
    axes.scatter(mean, difference, s=6, alpha=0.4)
    axes.axhline(bias, color="black", label=f"bias {bias:+.1f} years")
    for sign in (-1, 1):
        axes.axhline(bias + sign * 1.96 * spread, color="gray", linestyle="--",
                     label="95% limits of agreement" if sign < 0 else None)
    axes.axhline(0, color="lightgray", linewidth=0.8)
    axes.set_xlabel("mean of predicted and true age (years)")
    axes.set_ylabel("predicted - true age (years)")
    axes.set_title(f"Bland-Altman, {len(frame)} test images; limits {bias - 1.96 * spread:+.1f} to "
                   f"{bias + 1.96 * spread:+.1f} years", fontsize=10)
    axes.legend(loc="upper right", fontsize=8)
    return save_figure(figure, path, note)


def gap_versus_age(frame: pd.DataFrame, trend: Callable[[np.ndarray], np.ndarray], path: Path,
                   note: str = "") -> Path:
    """Raw and corrected gap against true age, with the validation-fitted trend: regression toward the mean
    made visible, and removed."""
    figure, axes = new_figure(1, 2, figsize=(10, 4), sharey=True)
    ages = np.linspace(0, 90, 50)
    for ax, column, title in ((axes[0], "gap", "raw gap"), (axes[1], "corrected_gap", "corrected gap")):
        ax.scatter(frame["age"], frame[column], s=6, alpha=0.4)
        ax.axhline(0, color="lightgray", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("true age (years)")
    axes[0].plot(ages, trend(ages), color="black", label="trend fitted on validation")
    axes[0].legend(fontsize=8)
    axes[0].set_ylabel("predicted - true age (years)")
    return save_figure(figure, path, note)


def gap_by_finding(table: pd.DataFrame, path: Path, note: str = "") -> Path:
    """Mean corrected gap per finding with its 95% interval (raw gap as open circles), patients in the labels."""
    figure, axes = new_figure(figsize=(7, 0.35 * len(table) + 1.5))
    rows = np.arange(len(table))[::-1]
    low = table["mean_corrected_gap"] - table["corrected_gap_ci95_low"]
    high = table["corrected_gap_ci95_high"] - table["mean_corrected_gap"]
    axes.errorbar(table["mean_corrected_gap"], rows, xerr=[low, high], fmt="o", color="C0", capsize=2,
                  label="corrected gap, 95% CI")
    axes.scatter(table["mean_gap"], rows, facecolors="none", edgecolors="gray", label="raw gap")
    axes.axvline(0, color="lightgray", linewidth=0.8)
    axes.set_yticks(rows, [f"{level} (n={patients})" for level, patients in zip(table["level"], table["patients"])],
                    fontsize=8)
    axes.set_xlabel("mean predicted - true age (years); n = patients")
    axes.legend(fontsize=8, loc="lower right")
    return save_figure(figure, path, note)


def coverage_by_group(per_group: dict, nominal: float, path: Path, note: str = "") -> Path:
    """Empirical coverage of the prediction intervals per true age group with 95% intervals, against the
    nominal level, and the mean interval width: where the intervals keep their promise and what it costs."""
    labels = list(per_group)
    values = np.array([per_group[label]["coverage"]["value"] for label in labels])
    lows = np.array([per_group[label]["coverage"]["ci95"][0] for label in labels])
    highs = np.array([per_group[label]["coverage"]["ci95"][1] for label in labels])
    figure, (top, bottom) = new_figure(2, 1, figsize=(7, 6), sharex=True)
    x = np.arange(len(labels))
    top.errorbar(x, values, yerr=[np.nan_to_num(values - lows), np.nan_to_num(highs - values)], marker="o",
                 capsize=3, linestyle="none")
    top.axhline(nominal, color="gray", linestyle="--", label=f"nominal {nominal:.0%}")
    top.set_ylim(0, 1.05)
    top.set_ylabel("coverage (test)")
    top.legend(loc="lower left")
    bottom.bar(x, [per_group[label]["mean_width"] for label in labels], color="#3b6ea5")
    bottom.set_ylabel("mean interval width (years)")
    bottom.set_xticks(x, [f"{label}\nn={per_group[label]['images']}" for label in labels], fontsize=8)
    bottom.set_xlabel("true age group")
    return save_figure(figure, path, note)


def reliability_diagram(before: list[dict], after: list[dict], temperature: float, path: Path,
                        note: str = "") -> Path:
    """Accuracy against confidence per bin, before and after temperature scaling (Guo et al. 2017)."""
    figure, axes = new_figure(figsize=(5.5, 5))
    for points, label in ((before, "softmax"), (after, f"temperature {temperature:.2f}")):
        axes.plot([p["confidence"] for p in points], [p["accuracy"] for p in points], marker="o", label=label)
    _against_identity(axes, 1, "perfectly calibrated", "confidence (top probability)", "accuracy")
    return save_figure(figure, path, note)


def age_histogram(frame: pd.DataFrame, path: Path, removed: int, max_age: float, source: str) -> Path:
    """The paper's Figure 1: number of images per year of age, after removing ages above `max_age`."""
    ages = np.floor(frame["age"].to_numpy()).astype(int)
    counts = np.bincount(ages, minlength=int(max_age) + 1)
    figure, axes = new_figure(figsize=(8, 4.5), dpi=120)
    axes.bar(np.arange(len(counts)), counts, width=1.0, color="#3b6ea5", edgecolor="white", linewidth=0.3)
    axes.set_xlabel("age (years)")
    axes.set_ylabel("number of images")
    axes.set_xlim(-0.5, len(counts) - 0.5)
    axes.set_title(f"Age of {len(frame):,} images ({removed:,} over {max_age:g} removed)", fontsize=11)
    figure.text(0.01, 0.01, source, fontsize=7, color="gray")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png"))
    return path
