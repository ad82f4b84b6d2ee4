"""Named anatomical regions as numbers: the share of an average saliency map's mass inside each region, so
that the paper's reading of its maps ("the salient area moves to the aortic arch and mediastinum with age")
becomes a curve over the age groups. Regions are polygons in normalised image coordinates, read from an
editable TOML file (`data/regions.toml` by default)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.path import Path as MplPath

from cxr_age.errors import CxrAgeError
from cxr_age.paths import data_dir

ELSEWHERE = "elsewhere"


@dataclass(frozen=True)
class Region:
    """A named polygon; `(x, y)` vertices in [0, 1], x to the image's right, y down."""

    name: str
    polygon: tuple[tuple[float, float], ...]


def default_regions_file() -> Path:
    return data_dir() / "regions.toml"


def _region(entry: object, index: int, path: Path) -> Region:
    where = f"{path}: region {index + 1}"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
        raise CxrAgeError(f"{where} needs a name")
    points = entry.get("polygon")
    try:
        polygon = tuple((float(x), float(y)) for x, y in points)
    except (TypeError, ValueError):
        raise CxrAgeError(f"{where} ({entry['name']}): polygon must be a list of [x, y] pairs") from None
    if len(polygon) < 3:
        raise CxrAgeError(f"{where} ({entry['name']}): a polygon needs at least 3 points")
    if any(not (0 <= v <= 1) for point in polygon for v in point):
        raise CxrAgeError(f"{where} ({entry['name']}): coordinates must lie in [0, 1] (fractions of the image)")
    return Region(entry["name"].strip(), polygon)


def load_regions(path: Path | None = None) -> list[Region]:
    """The regions of a TOML file of `[[region]]` tables with `name` and `polygon`, in file order."""
    path = path or default_regions_file()
    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CxrAgeError(f"regions file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise CxrAgeError(f"{path} is not a valid TOML file: {err}") from None
    entries = table.get("region")
    if not isinstance(entries, list) or not entries:
        raise CxrAgeError(f"{path} defines no [[region]] tables")
    regions = [_region(entry, i, Path(path)) for i, entry in enumerate(entries)]
    names = [region.name for region in regions]
    duplicated = sorted({name for name in names if names.count(name) > 1} | ({ELSEWHERE} & set(names)))
    if duplicated:
        raise CxrAgeError(f"{path}: region names must be unique and not {ELSEWHERE!r}: {', '.join(duplicated)}")
    return regions


def region_masks(regions: list[Region], size: int) -> dict[str, np.ndarray]:
    """Disjoint boolean masks `[size, size]` per region (a pixel belongs to the first region whose polygon
    holds its centre) plus `elsewhere` for the pixels of none."""
    centres = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(centres, centres)
    points = np.column_stack([x.ravel(), y.ravel()])
    taken = np.zeros((size, size), dtype=bool)
    masks = {}
    for region in regions:
        inside = MplPath(region.polygon).contains_points(points).reshape(size, size)
        masks[region.name] = inside & ~taken
        taken |= masks[region.name]
    masks[ELSEWHERE] = ~taken
    return masks


def mass_shares(mean_map: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Relevance mass accuracy (Arras et al. 2022, CLEVR-XAI): the fraction of the map's total mass inside
    each mask (NaN for an all-zero map)."""
    total = float(mean_map.sum())
    return {name: float(mean_map[mask].sum()) / total if total > 0 else float("nan") for name, mask in masks.items()}


def top_shares(mean_map: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Relevance rank accuracy (Arras et al. 2022): for a mask of k pixels, the fraction of the map's k
    highest pixels that lie inside it. Unlike the mass share, a faint haze spread over the whole image
    does not dilute it; a uniform map scores about the mask's area."""
    order = np.argsort(mean_map.ravel(), kind="stable")[::-1]
    shares = {}
    for name, mask in masks.items():
        k = int(mask.sum())
        shares[name] = float(mask.ravel()[order[:k]].mean()) if k else float("nan")
    return shares


def mass_share_table(regions: pd.DataFrame) -> pd.DataFrame:
    """A `regions.csv` table as percent of saliency mass per region (rows) and age group (columns) over all
    images, with the region's percent of the image area first."""
    shares = regions[regions["subset"] == "all"].pivot(index="region", columns="group", values="mass_share")
    shares = shares.reindex(index=regions["region"].unique(), columns=regions["group"].unique())
    shares.insert(0, "area", regions.drop_duplicates("region").set_index("region")["area_share"])
    shares.index.name = shares.columns.name = None
    return 100 * shares
