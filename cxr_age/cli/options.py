"""The data flags every command accepts, and how they override a `DataConfig`."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cxr_age.errors import CxrAgeError
from cxr_age.io.datasets import DATASET_NAMES
from cxr_age.io.metadata import VIEWS
from cxr_age.run import RUNS_ROOT, Run
from cxr_age.settings import DataConfig
from cxr_age.tasks import Task

if TYPE_CHECKING:
    from cxr_age.age_model import AgeModel


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def coverage_level(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (e.g. 0.9), got {text}")
    return value


def add_data_options(parser: argparse.ArgumentParser, images: bool = True) -> None:
    """Add the command-line contract shared by all commands. Defaults are None so that only flags the user
    gives override the config."""
    group = parser.add_argument_group("data")
    group.add_argument("--csv", metavar="PATH", action="append",
                       help="metadata table of a dataset (NIH, CheXpert, MIMIC-CXR, PadChest, COVID-19 collection, "
                            "a DICOM header table) or any CSV with image and age columns (optional: patient_id, "
                            "sex, view, findings). Repeat to train on several datasets together")
    group.add_argument("--image-dir", metavar="DIR", action="append",
                       help="folder the image names are relative to, one per --csv (default: the CSV folder's "
                            "images/, else the CSV folder; CheXpert: the folder above the table)")
    group.add_argument("--dataset", choices=DATASET_NAMES, action="append",
                       help="the table's layout, one per --csv (default: detected from its columns, and named in "
                            "the first line of output)")
    group.add_argument("--patients", metavar="PATH",
                       help="MIMIC-CXR: MIMIC-IV's patients.csv[.gz], which holds the ages (default: beside the table)")
    if images:
        group.add_argument("--image-size", type=positive_int, metavar="N", help="square input size in pixels")
    group.add_argument("--view", choices=VIEWS, help="keep one view position, or all (default: all)")
    group.add_argument("--max-age", type=float, metavar="N", help="remove images older than N years (default: 90)")
    group.add_argument("--seed", type=int, metavar="N", help="seed for the split and shuffling (default: 0)")
    group.add_argument("--nih-lists", metavar="DIR",
                       help="use NIH's official split: DIR holds train_val_list.txt and test_list.txt")
    group.add_argument("--skip-missing", action="store_true", default=None,
                       help="leave out listed images whose files are missing (counted, written to skipped.csv)")
    group.add_argument("--skip-unreadable", action="store_true", default=None,
                       help="leave out image files that cannot be decoded (counted, written to skipped.csv)")
    if images:
        group.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                           help="light augmentation: small rotation, shift, zoom, contrast (default: off)")
    parser.add_argument("--out", metavar="DIR", help="run directory to create (default: a new folder under runs/)")


def given_flags(args: argparse.Namespace, settings: type) -> dict[str, Any]:
    """The fields of the dataclass `settings` that the user gave as flags (None means not given)."""
    return {
        name: value[0] if isinstance(value, list) and len(value) == 1 else value
        for name in settings.__dataclass_fields__
        if (value := getattr(args, name, None)) is not None
    }


def data_config(args: argparse.Namespace, base: DataConfig | None = None) -> DataConfig:
    """`base` (or the defaults) with every data flag the user gave applied on top."""
    return replace(base or DataConfig(), **given_flags(args, DataConfig))


def load_task_model(source: Run | str, task: Task, checked: tuple[str | None, str], flags: dict[Task, str]) -> AgeModel:
    """The model of a run, bundle or URL, which must be of `task`, with `checked` its expected SHA-256 and
    engine; `flags` names the flag that takes each task's model, for the error."""
    from cxr_age.age_model import AgeModel

    sha256, engine = checked
    model = AgeModel.load(source, sha256, engine)
    if model.task is not task:
        raise CxrAgeError(f"{source} is a {model.task} run, not {task}: pass it as {flags[model.task]}")
    return model


def run_or_latest(given: str | None, task: Task, flag: str = "--run") -> Run:
    """The run the user named, else the newest finished run of `task` under runs/ (an error if none)."""
    if given:
        return Run(given)
    found = Run.latest(task)
    if found is None:
        raise CxrAgeError(f"no finished {task} run under {RUNS_ROOT}/: run `cxr-age-train {task}` first, "
                          f"or name one {'with' if flag.startswith('--') else 'as'} {flag}")
    return found
