"""The datasets the field trains and validates on, one adapter each over a shared contract
(`cxr_age.io.datasets.base.Dataset`): each reads its own metadata table into the normalised table with a
correct patient id, age in years, sex, view and findings, and says which rows it leaves out and why.

Examples:
    >>> from cxr_age.io import datasets
    >>> datasets.get("chexpert").title
    'CheXpert'
    >>> datasets.detect(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"]).name
    'chexpert'
"""

from __future__ import annotations

from cxr_age.errors import CxrAgeError
from cxr_age.io.datasets import chexpert, covid, dicom_headers, generic, mimic, nih, padchest
from cxr_age.io.datasets.base import REASONS, Dataset, Normalised

# Detection order: the most specific layouts first, the generic CSV last (it matches anything).
DATASETS: dict[str, Dataset] = {module.DATASET.name: module.DATASET
                                for module in (nih, chexpert, mimic, padchest, covid, dicom_headers, generic)}
DATASET_NAMES = tuple(DATASETS)

__all__ = ["DATASETS", "DATASET_NAMES", "REASONS", "Dataset", "Normalised", "detect", "get"]


def get(name: str) -> Dataset:
    """The adapter called `name` (one of `DATASET_NAMES`)."""
    if name not in DATASETS:
        raise CxrAgeError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return DATASETS[name]


def detect(columns: list[str]) -> Dataset:
    """The first adapter whose layout the columns match; the generic CSV when none does."""
    return next((d for d in DATASETS.values() if d.matches(columns)), DATASETS[generic.DATASET.name])
