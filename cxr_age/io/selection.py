"""From settings to the rows a command works on: pick the source(s), read each with its dataset's adapter,
resolve image paths safely and apply the filters, counting and naming everything each removes: the
adapter's exclusions (implausible and censored ages, lateral views, ...), then the paper's filter (ages above
the maximum removed) and the chosen view."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cxr_age import paths
from cxr_age.errors import CxrAgeError
from cxr_age.io import datasets
from cxr_age.io.datasets.base import REASONS
from cxr_age.io.metadata import VIEWS, read_columns, read_table
from cxr_age.settings import DataConfig

SAMPLE = "sample"
NIH = "nih"
REMOVED_COLUMNS = ["dataset", "row", "image", "age", "view", "reason"]


@dataclass
class Selection:
    """The selected rows (normalised columns plus `path`, absolute, or empty without an image folder),
    a one-line description of the source, counts of everything removed or skipped, the removed rows with
    their reasons (`removed`, written as `removed.csv`), and what the user must be told (`notes`) or must
    not miss (`warnings`)."""

    frame: pd.DataFrame
    source: str
    csv: Path
    image_dir: Path | None
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["image", "row", "reason"]))
    removed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REMOVED_COLUMNS))
    warnings: list[str] = field(default_factory=list)
    dataset: str = "csv"


@dataclass(frozen=True)
class Source:
    """One table to read: where it is, where its images are (None: the table's default), its dataset (None:
    detect) and, for MIMIC-CXR, MIMIC-IV's patients table."""

    csv: Path
    image_dir: Path | None
    dataset: str | None
    patients: str | None = None
    needs_images: bool = True
    label: str | None = None  # the dataset name to record, where the table's layout does not say it


def _as_list(value: str | list[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def sources(config: DataConfig) -> list[Source]:
    """The tables `config` names, each paired with its image folder and dataset (one each, or none)."""
    tables, folders, names = (_as_list(v) for v in (config.csv, config.image_dir, config.dataset))
    for what, given in (("image folder (`image_dir`)", folders), ("dataset (`dataset`)", names)):
        if given and len(given) != len(tables):
            raise CxrAgeError(f"{len(tables)} tables (`csv`) but {len(given)} {what}: give one per table, in the "
                              "same order, or none")
    return [Source(Path(csv), Path(folders[i]) if folders else None, names[i] if names else None, config.patients)
            for i, csv in enumerate(tables)]


def _image_dir(source: Source, dataset: str) -> Path | None:
    """The source's image folder: the one named, else the dataset's default (None when no images are needed)."""
    if source.image_dir is not None or not source.needs_images:
        return source.image_dir
    return datasets.get(dataset).default_image_dir(source.csv)


def _describe(source: Source, dataset: str) -> str:
    how = "named with `dataset`" if source.dataset else "detected from its columns"
    return f"{dataset} table {source.csv} ({how}), images in {_image_dir(source, dataset)}"


def _default_source(config: DataConfig, default: str) -> tuple[Source, str]:
    if default == NIH and not config.image_dir:
        return Source(paths.nih_table(), None, NIH, needs_images=False), (
            f"the shipped NIH ChestX-ray14 metadata table ({paths.nih_table().name}; no images needed); "
            "name another table with `csv`")
    image_dir = Path(_as_list(config.image_dir)[0]) if config.image_dir else paths.sample_image_dir()
    return Source(paths.sample_csv(), image_dir, None, label=NIH), (
        f"the embedded demo sample ({paths.sample_csv().parent}: NIH ChestX-ray14 images at 256 px); "
        "name a dataset with `csv` and `image_dir`")


def describe_source(config: DataConfig, default: str = SAMPLE) -> str:
    """One line naming the data `select` would read and the dataset each table is read as (from its header
    alone)."""
    if not config.csv:
        return _default_source(config, default)[1]
    return "; ".join(_describe(source, datasets.get(source.dataset).name if source.dataset else
                               datasets.detect(read_columns(source.csv)).name) for source in sources(config))


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


class _Removals:
    """Rows taken out of a frame one reason at a time, each counted and kept with its reason."""

    def __init__(self, frame: pd.DataFrame, counts: dict[str, int]) -> None:
        self.frame, self.counts, self.parts = frame, counts, []

    def remove(self, key: str, mask: pd.Series, reason: str) -> None:
        self.counts[f"removed_{key}"] = int(mask.sum())
        if mask.any():
            self.parts.append(self.frame.loc[mask].assign(reason=reason)[REMOVED_COLUMNS])
        self.frame = self.frame[~mask]

    def removed(self) -> pd.DataFrame:
        return pd.concat(self.parts, ignore_index=True) if self.parts else pd.DataFrame(columns=REMOVED_COLUMNS)


def _filter(frame: pd.DataFrame, config: DataConfig, counts: dict[str, int], csv: Path) -> _Removals:
    removals = _Removals(frame, counts)
    for key in REASONS:
        removals.remove(key, removals.frame["excluded"] == key, REASONS[key])
    removals.remove("over_max_age", removals.frame["age"] > config.max_age,
                    f"age over {config.max_age:g} (the paper's filter; `max_age`)")
    if config.view != "all":
        if (frame["view"] == "").all():
            raise CxrAgeError(f"{csv} has no view column, so `view` {config.view} cannot apply; use `view` all")
        removals.remove("other_view", removals.frame["view"] != config.view, f"view other than {config.view}")
    return removals


def _select_one(source: Source, config: DataConfig, description: str | None = None) -> Selection:
    table = read_table(source.csv, source.dataset, source.patients)
    image_dir = _image_dir(source, table.dataset)
    if image_dir is not None and not image_dir.is_dir():
        raise CxrAgeError(f"image folder not found: {image_dir}")
    frame = table.frame.assign(dataset=source.label or table.dataset)
    counts = {"read": len(frame), "patients_read": int(frame["patient_id"].nunique())}
    removals = _filter(frame, config, counts, source.csv)
    frame = removals.frame
    if frame.empty:
        raise CxrAgeError(f"no images left after filters (view {config.view}, age <= {config.max_age:g}) out of "
                          f"{counts['read']} in {source.csv}")
    frame = frame.drop(columns="excluded").reset_index(drop=True)
    frame["path"] = _resolve_paths(frame, image_dir) if image_dir is not None else ""
    counts["selected"] = len(frame)
    counts["patients_selected"] = int(frame["patient_id"].nunique())
    return Selection(frame, description or _describe(source, table.dataset), source.csv, image_dir, counts,
                     list(table.notes), removed=removals.removed(), warnings=list(table.warnings),
                     dataset=source.label or table.dataset)


def _combine(parts: list[Selection]) -> Selection:
    """Several tables as one selection: image names and patient ids prefixed with the dataset (`nih:32`), so
    that no two datasets share a patient or an image name."""
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    frame["image"] = frame["dataset"] + ":" + frame["image"]
    frame["patient_id"] = frame["dataset"] + ":" + frame["patient_id"]
    repeated = frame["image"][frame["image"].duplicated()]
    if len(repeated):
        raise CxrAgeError(f"{len(repeated)} images are listed by two of the tables (first: {repeated.iloc[0]})")
    counts: dict[str, int] = {}
    for part in parts:
        for key, value in part.counts.items():
            counts[key] = counts.get(key, 0) + value
    counts["patients_read"] = sum(p.counts["patients_read"] for p in parts)
    counts["patients_selected"] = int(frame["patient_id"].nunique())
    return Selection(frame, "; ".join(p.source for p in parts), parts[0].csv, parts[0].image_dir, counts,
                     [f"{p.dataset}: {note}" for p in parts for note in p.notes],
                     removed=pd.concat([p.removed for p in parts], ignore_index=True),
                     warnings=[f"{p.csv.name}: {w}" for p in parts for w in p.warnings],
                     dataset="+".join(dict.fromkeys(p.dataset for p in parts)))


def select(config: DataConfig, default: str = SAMPLE) -> Selection:
    """Read the configured table(s) (or the default source: the embedded sample, or the shipped NIH table)
    and keep the rows no adapter excludes, with age <= `max_age` and the chosen view.

    Several tables (`csv` a list) are read each with its own adapter and joined, with the dataset as a
    column and in every image name and patient id."""
    if config.view not in VIEWS:
        raise CxrAgeError(f"unknown view {config.view!r}; choose one of {', '.join(VIEWS)}")
    if config.max_age <= 0:
        raise CxrAgeError(f"`max_age` must be positive, got {config.max_age:g}")
    if not config.csv:
        if config.dataset or config.patients:
            raise CxrAgeError("`dataset` and `patients` describe a table: name it with `csv`")
        source, description = _default_source(config, default)
        return _select_one(source, config, description)
    parts = [_select_one(source, config) for source in sources(config)]
    return parts[0] if len(parts) == 1 else _combine(parts)
