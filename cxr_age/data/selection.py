"""From settings to the rows a command works on: pick the source, read it, resolve image paths safely and
apply the paper's filters (ages above the maximum removed, one view or all), counting what each removes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cxr_age import paths
from cxr_age.config import DataConfig
from cxr_age.data.metadata import VIEWS, read_table
from cxr_age.errors import CxrAgeError

SAMPLE = "sample"
NIH = "nih"


@dataclass
class Selection:
    """The selected rows (normalised columns plus `path`, absolute, or empty without an image folder),
    a one-line description of the source, and counts of everything removed or skipped."""

    frame: pd.DataFrame
    source: str
    csv: Path
    image_dir: Path | None
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["image", "row", "reason"]))


def _default_image_dir(csv: Path) -> Path:
    nested = csv.parent / "images"
    return nested if nested.is_dir() else csv.parent


def _source(config: DataConfig, default: str) -> tuple[Path, Path | None, str]:
    if config.csv:
        csv = Path(config.csv)
        image_dir = Path(config.image_dir) if config.image_dir else _default_image_dir(csv)
        return csv, image_dir, f"dataset {csv}, images in {image_dir}"
    if default == NIH and not config.image_dir:
        return paths.nih_table(), None, (
            f"the shipped NIH ChestX-ray14 metadata table ({paths.nih_table().name}; no images needed); "
            "name another table with --csv"
        )
    image_dir = Path(config.image_dir) if config.image_dir else paths.sample_image_dir()
    return paths.sample_csv(), image_dir, (
        f"the embedded demo sample ({paths.sample_csv().parent}: NIH ChestX-ray14 images at 256 px); "
        "name a dataset with --csv and --image-dir"
    )


def describe_source(config: DataConfig, default: str = SAMPLE) -> str:
    """One line naming the data `select` would read, without reading it."""
    return _source(config, default)[2]


def _resolve_paths(frame: pd.DataFrame, image_dir: Path) -> list[str]:
    """Absolute paths inside `image_dir`; a name that is absolute or climbs out of the folder is an error."""
    root = os.path.normpath(os.path.abspath(image_dir))
    resolved = []
    for image, row in zip(frame["image"], frame["row"]):
        full = os.path.normpath(os.path.join(root, image))
        if os.path.isabs(image) or os.path.commonpath([root, full]) != root:
            raise CxrAgeError(f"row {row}: image path {image!r} is outside the image folder {image_dir}")
        resolved.append(full)
    return resolved


def select(config: DataConfig, default: str = SAMPLE) -> Selection:
    """Read the configured table (or the default source: the embedded sample, or the shipped NIH table)
    and keep the rows with age <= `max_age` and the chosen view."""
    if config.view not in VIEWS:
        raise CxrAgeError(f"unknown view {config.view!r}; choose one of {', '.join(VIEWS)}")
    if config.max_age <= 0:
        raise CxrAgeError(f"--max-age must be positive, got {config.max_age:g}")
    csv, image_dir, description = _source(config, default)
    if image_dir is not None and not image_dir.is_dir():
        raise CxrAgeError(f"image folder not found: {image_dir}")
    table = read_table(csv)
    frame = table.frame
    counts = {"read": len(frame), "patients_read": int(frame["patient_id"].nunique())}
    over = frame["age"] > config.max_age
    counts["removed_over_max_age"] = int(over.sum())
    frame = frame[~over]
    if config.view != "all":
        if (table.frame["view"] == "").all():
            raise CxrAgeError(f"{csv} has no view column, so --view {config.view} cannot apply; use --view all")
        other = frame["view"] != config.view
        counts["removed_other_view"] = int(other.sum())
        frame = frame[~other]
    if frame.empty:
        raise CxrAgeError(
            f"no images left after filters (view {config.view}, age <= {config.max_age:g}) "
            f"out of {counts['read']} in {csv}"
        )
    frame = frame.reset_index(drop=True)
    frame["path"] = _resolve_paths(frame, image_dir) if image_dir is not None else ""
    counts["selected"] = len(frame)
    counts["patients_selected"] = int(frame["patient_id"].nunique())
    return Selection(frame, description, csv, image_dir, counts, list(table.notes))
