"""Saliency figures: a group's average map over its average image (all, correctly and wrongly predicted
images), the grid of all groups (the paper's figure), region shares across age groups, and the sanity check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cxr_age.saliency.average import SUBSETS, GroupMaps
from cxr_age.saliency.regions import ELSEWHERE
from cxr_age.saliency.sanity import SURVIVAL_THRESHOLD, SanityResult
from cxr_age.viz.figures import new_figure, save_figure

COLOURS = "inferno"
MAP_ALPHA = 0.55  # the map's opacity over the image
SCALE_LABEL = "saliency (panel maximum = 1)"


def _overlay(axes: Axes, image: np.ndarray | None, saliency: np.ndarray | None, title: str):
    axes.set_axis_off()
    axes.set_title(title, fontsize=9)
    if saliency is None:
        axes.text(0.5, 0.5, "no images", ha="center", va="center", transform=axes.transAxes)
        return None
    axes.imshow(image, cmap="gray", vmin=0, vmax=1)
    peak = float(saliency.max())
    return axes.imshow(saliency / peak if peak > 0 else saliency, cmap=COLOURS, alpha=MAP_ALPHA, vmin=0, vmax=1)


def group_figure(group: GroupMaps, method: str, path: Path, note: str = "") -> Path:
    """The group's average map over its average image: all images, then correct and wrong predictions."""
    figure, axes = new_figure(1, len(SUBSETS), figsize=(4 * len(SUBSETS), 4.4), layout="constrained")
    shown = None
    for ax, subset in zip(axes, SUBSETS):
        title = f"{group.label} years, {subset} (n={group.count(subset)})"
        shown = _overlay(ax, group.image.mean(), group.maps[subset].mean(), title) or shown
    figure.suptitle(f"average {method} map", fontsize=10)
    if shown is not None:
        figure.colorbar(shown, ax=list(axes), fraction=0.02, label=SCALE_LABEL)
    return save_figure(figure, path, note)


def study_figure(image: np.ndarray, saliency: np.ndarray, title: str, path: Path, note: str = "") -> Path:
    """One image with its map: the radiograph as the model saw it, and the map over it."""
    figure, axes = new_figure(1, 2, figsize=(8, 4.4), layout="constrained")
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_axis_off()
    axes[0].set_title("model input", fontsize=9)
    shown = _overlay(axes[1], image, saliency, "saliency of the predicted age")
    figure.suptitle(title, fontsize=10)
    figure.colorbar(shown, ax=list(axes), fraction=0.03, label=SCALE_LABEL)
    return save_figure(figure, path, note)


def grid_figure(groups: list[GroupMaps], method: str, path: Path, note: str = "") -> Path:
    """Average maps of every age group in order, three per row (the paper's saliency figure)."""
    rows = int(np.ceil(len(groups) / 3))
    figure, axes = new_figure(rows, 3, figsize=(10, 3.4 * rows), squeeze=False, layout="constrained")
    shown = None
    for ax, group in zip(axes.flat, groups):
        shown = _overlay(ax, group.image.mean(), group.maps["all"].mean(),
                         f"{group.label} years (n={group.count()})") or shown
    for ax in axes.flat[len(groups):]:
        ax.set_axis_off()
    figure.suptitle(f"average {method} map per age group", fontsize=11)
    if shown is not None:
        figure.colorbar(shown, ax=list(axes.flat), fraction=0.02, label=SCALE_LABEL)
    return save_figure(figure, path, note)


def region_figure(table: pd.DataFrame, path: Path, note: str = "") -> Path:
    """Share of saliency mass per region across the age groups (all images), with each region's area."""
    shares = table[table["subset"] == "all"]
    figure, axes = new_figure(figsize=(8, 4.5))
    for region, part in shares.groupby("region", sort=False):
        style = ":" if region == ELSEWHERE else "-"
        axes.plot(part["group"], 100 * part["mass_share"], style, marker="o",
                  label=f"{region} (area {100 * part['area_share'].iloc[0]:.0f}%)")
    axes.set_xlabel("age group (years)")
    axes.set_ylabel("share of saliency mass (%)")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save_figure(figure, path, note)


def sanity_figure(result: SanityResult, method: str, path: Path, note: str = "") -> Path:
    """Mean rank correlation with the trained maps as stages are randomised, and one image's maps."""
    table = result.table
    examples = list(result.examples.items())
    figure = Figure(figsize=(2.2 * len(examples), 6))
    top = figure.add_subplot(2, 1, 1)
    x = np.arange(len(table))
    spread = [table["spearman"] - table["ci95_low"], table["ci95_high"] - table["spearman"]]
    top.errorbar(x, table["spearman"], yerr=spread, marker="o", capsize=3)
    top.axhline(SURVIVAL_THRESHOLD, color="gray", linestyle="--", label=f"flag threshold {SURVIVAL_THRESHOLD}")
    top.set_xticks(x, [f"+ {stage}" for stage in table["randomised_through"]], fontsize=8)
    top.set_ylim(-0.2, 1.05)
    top.set_ylabel("Spearman with trained maps")
    flag = "FLAGGED: maps survive randomisation" if result.flagged else "maps change when weights are randomised"
    top.set_title(f"{method}, cascading randomisation from the output (n={table['images'].iloc[0]}): {flag}",
                  fontsize=9)
    top.legend(fontsize=8)
    for i, (stage, saliency) in enumerate(examples):
        ax = figure.add_subplot(2, len(examples), len(examples) + i + 1)
        ax.imshow(saliency, cmap=COLOURS)
        ax.set_axis_off()
        ax.set_title(stage if stage == "trained" else f"+ {stage}", fontsize=8)
    return save_figure(figure, path, note)
