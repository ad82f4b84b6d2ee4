"""A selection in words: what was read as which dataset, everything removed and why (implausible ages
named row by row), what is left, and the warnings a user must not miss. The data commands print these
lines; training and external evaluation log them."""

from __future__ import annotations

import logging

from cxr_age.io.ages import GROUP_LABELS
from cxr_age.io.datasets.base import REASONS
from cxr_age.io.selection import Selection
from cxr_age.settings import DataConfig

NAMED_ROWS = 50  # implausible ages are listed one by one up to this many (all of them in removed.csv)


def _implausible_rows(selection: Selection) -> list[str]:
    rows = selection.removed[selection.removed["reason"] == REASONS["implausible_age"]]
    lines = [f"  {dataset} row {row}: {image}, age {age:g}"
             for dataset, row, image, age in rows[["dataset", "row", "image", "age"]].head(NAMED_ROWS).itertuples(
                 index=False)]
    if len(rows) > NAMED_ROWS:
        lines.append(f"  ... and {len(rows) - NAMED_ROWS} more, all in removed.csv")
    return lines


def selection_lines(selection: Selection, config: DataConfig) -> list[str]:
    """The counts of a selection, one fact per line, in the order the filters ran."""
    counts = selection.counts
    lines = [f"note: {note}" for note in selection.notes]
    lines.append(f"read {counts['read']:,} images of {counts['patients_read']:,} patients")
    for key, reason in REASONS.items():
        if counts.get(f"removed_{key}"):
            lines.append(f"removed {counts[f'removed_{key}']:,} images: {reason}")
            if key == "implausible_age":
                lines += _implausible_rows(selection)
    lines.append(f"removed {counts['removed_over_max_age']:,} images with age over {config.max_age:g}")
    if "removed_other_view" in counts:
        lines.append(f"removed {counts['removed_other_view']:,} images of views other than {config.view}")
    age_zero = int((selection.frame["age"] == 0).sum())
    zero_note = f" ({age_zero:,} of age 0 counted in group {GROUP_LABELS[0]})" if age_zero else ""
    lines.append(f"selected {counts['selected']:,} images of {counts['patients_selected']:,} patients{zero_note}")
    views = selection.frame["view"].replace("", "not recorded").value_counts()
    lines.append("views: " + ", ".join(f"{view} {n:,}" for view, n in views.items()))
    if selection.frame["dataset"].nunique() > 1:
        per = selection.frame.groupby("dataset")["patient_id"].agg(["size", "nunique"])
        lines.append("per dataset: " + ", ".join(f"{name} {row['size']:,} images of {row['nunique']:,} patients"
                                                 for name, row in per.iterrows()))
    return lines


def warning_lines(selection: Selection) -> list[str]:
    """The selection's warnings, marked so that they stand out in a log."""
    return [f"WARNING: {warning}" for warning in selection.warnings]


def log_selection(selection: Selection, config: DataConfig, log: logging.Logger) -> None:
    """The warnings (at warning level) and the counts of a selection, in `log`."""
    for line in warning_lines(selection):
        log.warning(line)
    for line in selection_lines(selection, config):
        log.info(line)
