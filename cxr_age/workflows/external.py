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

import logging
import os
import time
from dataclasses import dataclass, replace

import pandas as pd

from cxr_age.bundle.bundle import Bundle, open_model
from cxr_age.errors import CxrAgeError
from cxr_age.io.files import new_folder
from cxr_age.io.image_check import check_images
from cxr_age.io.selection import select
from cxr_age.io.selection_report import log_selection
from cxr_age.io.store import matching_store
from cxr_age.run import RUNS_ROOT, Run
from cxr_age.stats.conformal import DEFAULT_COVERAGE
from cxr_age.tasks import Judging
from cxr_age.workflows.evaluation import judge_uncertainty, predict_split

log = logging.getLogger(__name__)

EXTERNAL = "external"  # the split name of an external validation's predictions and figures


@dataclass(frozen=True)
class ExternalOptions:
    """How the other dataset is read and judged: MIMIC-IV's patients table for a MIMIC-CXR table; whether
    missing or undecodable files are left out (counted, in skipped.csv) instead of stopping; and the nominal
    coverage of the intervals or prediction sets."""

    patients: str | None = None
    skip_missing: bool = False
    skip_unreadable: bool = False
    coverage: float = DEFAULT_COVERAGE


def _validation(run: Run) -> pd.DataFrame:
    val = run.predictions("val")
    if val is None:
        raise CxrAgeError(f"{run} has no {run.predictions_file('val').name}: evaluate the run first "
                          f"(cxr-age-evaluate {run}); the uncertainty and the age-gap correction are fitted on it")
    return val


def _judge_with_the_bundles(bundle: Bundle, predictions: pd.DataFrame, judging: Judging,
                            out: Run) -> tuple[pd.DataFrame, dict | None]:
    """A bundle's intervals or calibration, as fitted on its run's validation split, judged on `predictions`."""
    fitted = bundle.uncertainty()
    if fitted is None:
        return predictions, None
    out.save_uncertainty(fitted)
    return bundle.task.judge_uncertainty(fitted, bundle.baseline(), predictions, judging)


def evaluate_external(run: Run | str | os.PathLike, csv: str | os.PathLike, image_dir: str | os.PathLike | None = None,
                      dataset: str | None = None, options: ExternalOptions = ExternalOptions()) -> Run:
    """Predict every eligible image of another dataset with a run's model and write the evaluation into
    `RUN/external/<dataset>-<time>/`; return that folder (laid out as a run's evaluation: `metrics.json`,
    `predictions_external.csv`, figures, age gap).

    Args:
        run: a finished, evaluated run (or its folder), or a bundle (a folder or URL), whose intervals or
            calibration are used as fitted on its run's validation split (no age gap: a bundle holds no
            validation predictions to fit its trend), and whose validation goes under `runs/external/`.
        csv: the other dataset's metadata table.
        image_dir: the folder its image paths are relative to (default: the dataset's usual place).
        dataset: its layout (default: detected from its columns).
        options: MIMIC-IV's patients table, skipping of missing or undecodable files, coverage.

    Examples:
        >>> folder = cxr_age.evaluate_external("runs/regress-nih", "CheXpert-v1.0-small/valid.csv")
        >>> folder.metrics()["splits"]["external"]["model"]["mae"]
    """
    run = open_model(run)
    experiment = run.experiment
    task = experiment.task
    val = None if isinstance(run, Bundle) else _validation(run)
    data = replace(experiment.data, csv=str(csv), image_dir=str(image_dir) if image_dir else None, dataset=dataset,
                   patients=options.patients, nih_lists=None, skip_missing=options.skip_missing,
                   skip_unreadable=options.skip_unreadable)
    selection = select(data)
    log_selection(selection, data, log)
    store = matching_store(selection.frame["path"], data.image_size)
    selection = check_images(selection, options.skip_missing, options.skip_unreadable, store=store)
    # A bundle (perhaps in the download cache) is not written into: its validations go under runs/external/.
    out = Run(new_folder(None, selection.dataset, RUNS_ROOT / Run.EXTERNAL) if val is None else
              run.new_folder(Run.EXTERNAL, selection.dataset))
    out.write_table(selection.removed, Run.REMOVED)
    out.write_table(selection.skipped, Run.SKIPPED)
    log.info("predicting %d images of %d patients into %s", len(selection.frame),
             selection.frame["patient_id"].nunique(), out)
    predictions = predict_split(run.network(), selection.frame, experiment)
    judging = Judging(out.folder, EXTERNAL, experiment.data.seed, experiment.note, options.coverage)
    if val is not None:
        predictions, uncertainty = judge_uncertainty(run, val, predictions, judging, into=out)
    else:
        predictions, uncertainty = _judge_with_the_bundles(run, predictions, judging, out)
    out.write_predictions(EXTERNAL, predictions)
    metrics = task.metrics(predictions, run.baseline(), experiment.data.seed)
    task.write_figures(predictions, metrics, judging)
    result = {"experiment": experiment.name, "task": task.name, "demo": experiment.train.demo,
              "trained_on": run.trained_on(), "tested_on": selection.dataset, "source": selection.source,
              "counts": selection.counts, "warnings": selection.warnings, "splits": {EXTERNAL: metrics},
              "uncertainty": uncertainty, "evaluated": time.strftime("%Y-%m-%d %H:%M:%S")}
    if task.predicts_age and val is not None:  # a bundle holds no validation predictions to fit the gap's trend
        from cxr_age.workflows.age_gap import write_age_gap

        write_age_gap(val, predictions, out, judging)
    out.write_metrics(result)
    return out
