"""Where the project's shipped data lives (the NIH v2020 metadata table and the embedded demo sample), and
the user's cache folder (downloaded bundles, compiled XLA programs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cxr_age.errors import CxrAgeError

NIH_TABLE_NAME = "Data_Entry_2017_v2020.csv.gz"


def cache_dir() -> Path:
    """The user's cache folder: `$CXR_AGE_CACHE`, else `~/.cache/cxr-age`."""
    return Path(os.environ.get("CXR_AGE_CACHE") or Path.home() / ".cache" / "cxr-age")


def data_dir() -> Path:
    """The project's `data/` folder: `$CXR_AGE_DATA`, the source checkout's, or the installed copy."""
    candidates = []
    if os.environ.get("CXR_AGE_DATA"):
        candidates.append(Path(os.environ["CXR_AGE_DATA"]))
    candidates.append(Path(__file__).resolve().parent.parent / "data")
    candidates.append(Path(sys.prefix) / "share" / "cxr-age" / "data")
    for folder in candidates:
        if (folder / NIH_TABLE_NAME).is_file():
            return folder
    raise CxrAgeError(
        "cannot find the project's data/ folder (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); install from a source checkout with `pip install -e .` or set CXR_AGE_DATA"
    )


def nih_table() -> Path:
    """The shipped NIH ChestX-ray14 metadata table (v2020 release)."""
    return data_dir() / NIH_TABLE_NAME


def sample_csv() -> Path:
    """Labels of the embedded demo sample (477 NIH images at 256 px)."""
    return data_dir() / "sample" / "labels.csv"


def sample_image_dir() -> Path:
    """Images of the embedded demo sample."""
    return data_dir() / "sample" / "images"


def experiments_dir() -> Path:
    """The experiment configs (`experiments/*.toml`), beside `data/` in a checkout or an install."""
    return data_dir().parent / "experiments"


def experiment_file(name_or_path: str) -> Path:
    """An experiment config by path, or by name (`regress_mse`) from the experiments folder."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.parent != Path("."):
        return path
    return experiments_dir() / f"{name_or_path}.toml"
