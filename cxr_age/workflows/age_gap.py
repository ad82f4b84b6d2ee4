"""The age-gap analysis of a regress run (`cxr_age.stats.age_gap`), written into the run or an external
validation's folder: `age_gap_<split>.csv` (per image), `age_gap_by_{finding,sex,view}.csv`, `age_gap.json`
and the figures (Bland-Altman, gap against age, gap per finding)."""

from __future__ import annotations

import os

import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.files import write_csv, write_json
from cxr_age.run import Run
from cxr_age.stats.age_gap import AgeGap, age_gap
from cxr_age.tasks import Judging
from cxr_age.viz import figures


def analyse_age_gap(run: Run | str | os.PathLike) -> AgeGap:
    """From a regress run's validation and test predictions, write the age gap of its test split into it."""
    run = Run.of(run)
    frames = {}
    for split in ("val", "test"):
        frames[split] = run.predictions(split)
        if frames[split] is None:
            raise CxrAgeError(f"{run} has no {run.predictions_file(split).name}: evaluate the run first")
        if "predicted_age" not in frames[split]:
            raise CxrAgeError(f"{run} is not a regress run: the age gap needs predicted ages")
    experiment = run.experiment
    return write_age_gap(frames["val"], frames["test"], run, Judging(run.folder, "test", experiment.data.seed,
                                                                      experiment.note))


def write_age_gap(val: pd.DataFrame, test: pd.DataFrame, out: Run, judging: Judging) -> AgeGap:
    """The age gap of `test`'s predictions, corrected by the trend fitted on `val`'s, written into `out`."""
    split, note = judging.split, judging.note
    result = age_gap(val, test, judging.seed, split)
    write_csv(result.images, out.file(f"age_gap_{split}.csv"))
    for facet, table in result.tables.items():
        write_csv(table, out.file(f"age_gap_by_{facet}.csv"))
    write_json(result.summary, out.file(Run.AGE_GAP))
    figures.bland_altman(result.images, out.file(f"bland_altman_{split}.png"), note)
    figures.gap_versus_age(result.images, result.correction.trend, out.file(f"age_gap_vs_age_{split}.png"), note)
    figures.gap_by_finding(result.tables["finding"], out.file(f"age_gap_by_finding_{split}.png"), note)
    return result
