"""One saliency analysis of a trained run, as in the paper's "what the network sees": average maps of each
requested age group over a split's images, their region shares, the optional randomisation sanity check,
and every file a reader opens (PNG figures, `.npy` maps, CSV tables, a JSON of the settings)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from cxr_age.config import Experiment
from cxr_age.errors import CxrAgeError
from cxr_age.io.ages import GROUP_LABELS
from cxr_age.io.files import write_atomic, write_csv, write_json
from cxr_age.io.pipeline import make_dataset
from cxr_age.io.store import matching_store
from cxr_age.run import Run
from cxr_age.saliency import plots
from cxr_age.saliency.average import SUBSETS, Averaging, GroupMaps, average_group
from cxr_age.saliency.methods import MapSettings, SaliencyMaps
from cxr_age.saliency.regions import default_regions_file, load_regions, mass_shares, region_masks, top_shares
from cxr_age.saliency.sanity import SanityResult, cascading_randomisation


@dataclass(frozen=True)
class SaliencyRequest:
    """What to map: a run, age-group labels, a split, how (`settings`), and the optional extras."""

    run: Run | Path
    groups: tuple[str, ...] = tuple(GROUP_LABELS)
    split: str = "test"
    settings: MapSettings = MapSettings()
    limit: int | None = None
    batch_size: int | None = None
    tolerance: float = 5.0
    regions_file: Path | None = None
    sanity_images: int = 0


@dataclass
class SaliencyResult:
    """Where the files went, the JSON summary, the region shares and the sanity check (if run)."""

    folder: Path
    summary: dict
    regions: pd.DataFrame
    sanity: SanityResult | None


def default_batch_size(image_size: int) -> int:
    """8 images of 256 px or more; smaller images in batches of the same pixel count, up to 64. At 64 px a
    batch of 8 costs mostly eager per-call overhead: 726 maps took 229 s in batches of 8 and 71 s in batches
    of 64 (`benchmarks/nih_scale.py` at 1/16 of NIH)."""
    return int(min(64, max(8, 8 * (256 // image_size) ** 2)))


def select_groups(frame: pd.DataFrame, labels: tuple[str, ...], limit: int | None,
                  seed: int) -> dict[str, pd.DataFrame]:
    """The images of each requested group, at most `limit` per group (a seeded random subset)."""
    selected = {}
    for label in labels:
        part = frame[frame["group"] == GROUP_LABELS.index(label)]
        if limit is not None and len(part) > limit:
            part = part.sample(limit, random_state=seed).sort_index()
        selected[label] = part.reset_index(drop=True)
    return selected


def _save_npy(array: np.ndarray, path: Path) -> None:
    write_atomic(path, lambda tmp: np.save(tmp, array))


def region_table(groups: list[GroupMaps], masks: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per group and subset and region: the region's area, its share of the average map's mass, and the
    share of the map's most salient pixels (as many as the region has) that fall inside it."""
    rows = []
    for group in groups:
        for subset in SUBSETS:
            mean_map = group.maps[subset].mean()
            if mean_map is None:
                continue
            tops = top_shares(mean_map, masks)
            for region, share in mass_shares(mean_map, masks).items():
                rows.append({"group": group.label, "subset": subset, "images": group.count(subset),
                             "region": region, "area_share": float(masks[region].mean()), "mass_share": share,
                             "top_share": tops[region]})
    return pd.DataFrame(rows)


def _sanity(model: keras.Model, config: Experiment, request: SaliencyRequest,
            selected: pd.DataFrame) -> SanityResult:
    sample = selected.sample(min(request.sanity_images, len(selected)), random_state=config.data.seed)
    data = make_dataset(sample, config.task.targets(sample, config.train.age_scale), config.data.image_size,
                        len(sample))
    images = next(iter(data))[0].numpy()
    return cascading_randomisation(model, config.task, request.settings, images, sample["group"].to_numpy(),
                                   seed=config.data.seed)


def _write_group(group: GroupMaps, folder: Path, method: str, note: str) -> None:
    for subset in SUBSETS:
        if group.count(subset):
            suffix = "" if subset == "all" else f"_{subset}"
            _save_npy(group.maps[subset].mean(), folder / f"saliency_{group.label}{suffix}.npy")
    plots.group_figure(group, method, folder / f"saliency_{group.label}.png", note)


def _summary(request: SaliencyRequest, config: Experiment, groups: list[GroupMaps], empty: list[str],
             folder: Path) -> dict:
    return {
        "run": str(request.run), "task": config.train.task, "experiment": config.name, "demo": config.train.demo,
        **request.settings.describe(), "split": request.split, "limit": request.limit, "batch_size": request.batch_size,
        "correct_means": config.task.correct_means(request.tolerance),
        "regions_file": str(request.regions_file or default_regions_file()),
        "groups": {group.label: {**{subset: group.count(subset) for subset in SUBSETS}, "empty_maps": group.empty_maps}
                   for group in groups},
        "groups_without_images": empty, "out": str(folder),
        "versions": {name: version(name) for name in ("tensorflow", "keras", "tf-keras-vis")},
    }


def analyse(request: SaliencyRequest, out: str | None = None, progress: bool = True) -> SaliencyResult:
    """Map the requested groups of a run and write the files into `out` (default: a fresh folder under
    `RUN/saliency/`). Every check that needs no model runs before the model is loaded."""
    run = Run.open(request.run)
    config = run.experiment
    request = replace(request, batch_size=request.batch_size or default_batch_size(config.data.image_size))
    regions = load_regions(request.regions_file)
    selected = select_groups(run.split_images(request.split), request.groups, request.limit, config.data.seed)
    empty = [label for label, part in selected.items() if part.empty]
    if len(empty) == len(selected):
        raise CxrAgeError(f"the {request.split} split of {run} has no images in age group(s) {', '.join(empty)}")
    model = run.network()
    maps = SaliencyMaps(model, config.task, request.settings)
    folder = run.new_folder(Run.SALIENCY, f"{request.settings.method}-{request.split}", out)
    note, method = config.note, request.settings.method
    mapped = {label: part for label, part in selected.items() if not part.empty}
    how = Averaging(request.batch_size, request.tolerance, progress,
                    matching_store(pd.concat(mapped.values())["path"], config.data.image_size))
    groups = []
    for label, part in mapped.items():
        groups.append(average_group(maps, model, part, config, label, how))
        _write_group(groups[-1], folder, method, note)
    write_csv(pd.concat([group.images() for group in groups], ignore_index=True), folder / "images.csv")
    table = region_table(groups, region_masks(regions, config.data.image_size))
    write_csv(table, folder / "regions.csv")
    if len(groups) > 1:
        plots.grid_figure(groups, method, folder / "grid.png", note)
        plots.region_figure(table, folder / "regions.png", note)
    summary = _summary(request, config, groups, empty, folder)
    sanity = None
    if request.sanity_images:
        sanity = _sanity(model, config, request, pd.concat(mapped.values(), ignore_index=True))
        write_csv(sanity.table, folder / "sanity.csv")
        plots.sanity_figure(sanity, method, folder / "sanity.png", note)
        summary["sanity"] = {"flagged": sanity.flagged,
                             "spearman_all_randomised": float(sanity.table["spearman"].iloc[-1])}
    write_json(summary, folder / "settings.json")
    return SaliencyResult(folder, summary, table, sanity)
