"""External validation: a trained run's model on another dataset, judged exactly as on its own test split.

Published age-from-CXR models lose accuracy on other hospitals' images (Ieki et al. 2022: MAE 3.67 years on
their own test set, 6.0 on PadChest and 8.7 on CheXpert), so a model is judged by how it holds up there.
Every eligible image of the other table (read by its dataset's adapter, filtered by the run's own view and
age settings) is predicted, and `RUN/external/<dataset>-<time>/` gets the run's test metrics (patient-
bootstrap 95% intervals; the baseline is the run's training median or majority group, not one fitted on the
new data), per age group, view and sex; the run's uncertainty (intervals or calibration fitted on its own
validation split, so their coverage here shows how far they travel); for a regressor the age gap with the
correction fitted on the run's validation split; and the figures.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from cxr_age.conformal import DEFAULT_COVERAGE
from cxr_age.data.image_check import check_images
from cxr_age.data.integrity import read_split
from cxr_age.data.selection import select
from cxr_age.data.selection_report import log_selection
from cxr_age.data.store import matching_store
from cxr_age.errors import CxrAgeError
from cxr_age.evaluation import FIGURES, load_network, predict_split, run_config, saved_predictions
from cxr_age.run_dir import new_run_dir, write_csv, write_json
from cxr_age.run_files import METRICS, REMOVED, SKIPPED, demo_note
from cxr_age.tasks import get_task
from cxr_age.uncertainty import UNCERTAINTY

log = logging.getLogger(__name__)

EXTERNAL = "external"  # the folder of a run that holds its external evaluations, and their split name
PREDICTIONS = "predictions_external.csv"


def trained_on(run_dir: Path) -> str:
    """The dataset(s) a run was trained on, from its training split (`csv` for runs made before datasets had
    names, when the table was not NIH's)."""
    names = read_split(run_dir, "train")["dataset"].replace("", "csv").unique()
    return "+".join(sorted(names))


def _validation(run_dir: Path) -> pd.DataFrame:
    val = saved_predictions(run_dir, "val")
    if val is None:
        raise CxrAgeError(f"{run_dir} has no predictions_val.csv: evaluate the run first (cxr-age-evaluate "
                          f"{run_dir}); the uncertainty and the age-gap correction are fitted on it")
    return val


def evaluate_external(run: str | Path, csv: str | Path, image_dir: str | Path | None = None,
                      dataset: str | None = None, *, patients: str | None = None, skip_missing: bool = False,
                      skip_unreadable: bool = False, coverage: float = DEFAULT_COVERAGE) -> Path:
    """Predict every eligible image of another dataset with a run's model and write the evaluation into
    `RUN/external/<dataset>-<time>/`; return that folder.

    Args:
        run: a finished, evaluated run folder.
        csv: the other dataset's metadata table.
        image_dir: the folder its image paths are relative to (default: the dataset's usual place).
        dataset: its layout (default: detected from its columns).
        patients: MIMIC-IV's patients table, for a MIMIC-CXR table.
        skip_missing, skip_unreadable: leave out (counted, in skipped.csv) missing or undecodable files
            instead of stopping.
        coverage: the nominal coverage of the intervals or prediction sets.

    Examples:
        >>> folder = cxr_age.evaluate_external("runs/regress-nih", "CheXpert-v1.0-small/valid.csv")
        >>> json.loads((folder / "metrics.json").read_text())["splits"]["external"]["model"]["mae"]
    """
    run_dir = Path(run)
    experiment = run_config(run_dir)
    task = get_task(experiment.train.task)
    val = _validation(run_dir)
    data = replace(experiment.data, csv=str(csv), image_dir=str(image_dir) if image_dir else None, dataset=dataset,
                   patients=patients, nih_lists=None, skip_missing=skip_missing, skip_unreadable=skip_unreadable)
    selection = select(data)
    log_selection(selection, data, log)
    store = matching_store(selection.frame["path"], data.image_size)
    selection = check_images(selection, skip_missing, skip_unreadable, store=store)
    out = new_run_dir(None, selection.dataset, root=run_dir / EXTERNAL)
    write_csv(selection.removed, out / REMOVED)
    write_csv(selection.skipped, out / SKIPPED)
    log.info("predicting %d images of %d patients into %s", len(selection.frame),
             selection.frame["patient_id"].nunique(), out)
    predictions = predict_split(load_network(run_dir), selection.frame, experiment)
    note = demo_note(experiment.train.demo)
    train = read_split(run_dir, "train")
    predictions, uncertainty = UNCERTAINTY[task.name](out, experiment, train, val, predictions, coverage, note,
                                                      split=EXTERNAL)
    write_csv(predictions, out / PREDICTIONS)
    metrics = task.metrics(predictions, train, experiment.data.seed)
    FIGURES[task.name](out, EXTERNAL, predictions, metrics, note)
    result = {"experiment": experiment.name, "task": task.name, "demo": experiment.train.demo,
              "trained_on": trained_on(run_dir), "tested_on": selection.dataset, "source": selection.source,
              "counts": selection.counts, "warnings": selection.warnings, "splits": {EXTERNAL: metrics},
              "uncertainty": uncertainty, "evaluated": time.strftime("%Y-%m-%d %H:%M:%S")}
    if task.predicts_age:
        from cxr_age.age_gap import write_age_gap

        write_age_gap(val, predictions, out, experiment.data.seed, note, split=EXTERNAL)
    write_json(result, out / METRICS)
    return out


def external_results(run_dir: Path) -> list[tuple[Path, dict]]:
    """Every external evaluation of a run (folder, metrics), oldest first."""
    found = [(path.parent, json.loads(path.read_text())) for path in (run_dir / EXTERNAL).glob(f"*/{METRICS}")]
    return sorted(found, key=lambda item: item[1].get("evaluated", ""))
