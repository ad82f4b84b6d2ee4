"""Ages in years and the paper's nine age groups.

Karargyris et al. (SPIE 2019) classify into nine right-closed decades (0,10] ... (80,90]; the 14 NIH images
of age 0 are put in the first group. NIH's 2017 table writes ages as `058Y`, `011M` or `001D`.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError

GROUP_LABELS: tuple[str, ...] = tuple(f"{lo}-{lo + 10}" for lo in range(0, 90, 10))
N_GROUPS = len(GROUP_LABELS)
NO_GROUP = -1

_UNIT_YEARS = {"": 1.0, "Y": 1.0, "M": 1.0 / 12.0, "W": 7.0 / 365.25, "D": 1.0 / 365.25}
_AGE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([YMWD]?)\s*$", re.IGNORECASE)


def parse_age(text: str) -> float | None:
    """Age in years from `58`, `58.5`, `058Y`, `011M` (months), `003W` (weeks) or `001D` (days); None if
    the text is not such an age (negative numbers included)."""
    match = _AGE_PATTERN.match(str(text))
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_YEARS[match.group(2).upper()]


def parse_ages(values: pd.Series) -> pd.Series:
    """Vectorised `parse_age`: float years, NaN where a value does not parse."""
    parts = values.astype(str).str.extract(_AGE_PATTERN)
    number = pd.to_numeric(parts[0], errors="coerce")
    scale = parts[1].fillna("").str.upper().map(_UNIT_YEARS)
    return (number * scale).astype(float)


def years_between(birth: pd.Series, later: pd.Series) -> pd.Series:
    """Exact years from `birth` to `later` (both YYYYMMDD text); NaN where either does not parse or `later`
    comes first."""
    start = pd.to_datetime(birth.str.slice(0, 8), format="%Y%m%d", errors="coerce")
    end = pd.to_datetime(later.str.slice(0, 8), format="%Y%m%d", errors="coerce")
    years = (end - start).dt.days / 365.25
    return years.where(years >= 0)


def group_index(ages: np.ndarray | pd.Series | float) -> np.ndarray:
    """Index 0..8 of the right-closed decade (0,10] ... (80,90] holding each age; age 0 goes to group 0;
    ages above 90 (or below 0) get NO_GROUP."""
    years = np.asarray(ages, dtype=float)
    outside = (years < 0) | (years > 90) | np.isnan(years)
    index = np.ceil(np.where(outside, 0.0, years) / 10.0).astype(int) - 1
    return np.where(outside, NO_GROUP, np.maximum(index, 0))


def group_from_label(label: str) -> int:
    """Group index from a command-line label such as `70-80`."""
    if label not in GROUP_LABELS:
        raise CxrAgeError(f"unknown age group {label!r}; choose one of {', '.join(GROUP_LABELS)}")
    return GROUP_LABELS.index(label)
