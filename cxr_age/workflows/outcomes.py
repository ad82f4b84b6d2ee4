"""Does the gap predict the outcome? A model's predictions joined to an outcome table
(`cxr_age.workflows.outcome_inputs`), analysed (`cxr_age.stats.outcomes`) and written into a folder:
`outcomes.json` (the contract scripts read), `effects.csv` (every effect), `unmatched.csv` and
`excluded.csv` (every row left out, with why), `forest.png` and `adjusted_curves.png`. By default the folder
is `RUN/outcomes/<time>/` for a run (its report shows it) or `runs/outcomes/<time>/` for a predictions CSV."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxr_age.io.files import new_folder, without_nan, write_csv, write_json
from cxr_age.run import RUNS_ROOT, Run
from cxr_age.stats.outcome_fits import COX
from cxr_age.stats.outcomes import OutcomeAnalysis, OutcomeSettings, analyse_gap
from cxr_age.viz.outcome_figures import adjusted_curves, forest_plot
from cxr_age.workflows.outcome_inputs import Joined, ModelPredictions, OutcomeQuestion, join_outcomes, read_predictions

log = logging.getLogger(__name__)
OUTCOMES = "outcomes"  # the folder under a run, and the kind of the default folder's name
RESULT = "outcomes.json"


@dataclass
class OutcomeResult:
    """Where the analysis was written, its summary (`outcomes.json`), and the statistics behind it."""

    folder: Path
    summary: dict
    analysis: OutcomeAnalysis


def _threshold(question: OutcomeQuestion, predictions: ModelPredictions, joined: Joined) -> tuple[float, str]:
    if question.threshold is not None:
        return question.threshold, "given (`threshold`)"
    if predictions.test_mae is not None:
        return predictions.test_mae, "the model's test MAE"
    mae = float(np.abs(joined.frame["gap"]).mean())
    return mae, "the mean absolute gap of the analysed rows (the model's test MAE is not known for these predictions)"


def _out_folder(source: str | Path, out: str | os.PathLike | None) -> Path:
    root = Path(source) / OUTCOMES if Path(source).is_dir() else RUNS_ROOT / OUTCOMES
    return new_folder(out, OUTCOMES, root)


def _summary(analysis: OutcomeAnalysis, joined: Joined, question: OutcomeQuestion, predictions: ModelPredictions,
             table: str | Path) -> dict:
    frame = joined.frame
    outcome = question.outcome
    return {
        "n": len(frame), "patients": int(frame["patient"].nunique()), **analysis.summary,
        "outcome": {"time": outcome.time, "event": outcome.event, "binary": outcome.binary,
                    "positive": question.positive or "1, y, yes, true"},
        "predictions": predictions.source, "outcome_table": str(table), "join": question.on,
        "counts": joined.counts, "notes": joined.notes,
        "bias_corrected_gap": ("reported beside the raw gap, its correction fitted on the run's validation split"
                               if "corrected_gap" in frame else
                               "not reported: these predictions carry no validation split to fit it on"),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def analyse_outcomes(predictions: str | Path, outcomes_csv: str | Path, question: OutcomeQuestion,
                     out: str | os.PathLike | None = None, progress: bool = True) -> OutcomeResult:
    """Whether the age gap of `predictions` predicts the outcome of `outcomes_csv`, adjusted for age, sex,
    view and the question's covariates, written into `out` (new or empty; by default a fresh folder).

    Args:
        predictions: a regress run (its test split), an external validation folder, or a predictions CSV
            written by `cxr-age-predict --csv`.
        outcomes_csv: the outcome table: one row per image (or patient) with the join key, age and outcome.
        question: the outcome's columns, the join and the settings (`OutcomeQuestion`).
        out: the folder to write.
        progress: show the bootstrap's progress bar.

    Examples:
        >>> result = analyse_outcomes("runs/regress-nih", "followup.csv",
        ...                           OutcomeQuestion(OutcomeColumns(time="years", event="died")))
        >>> result.summary["gap"]["ratio"], result.summary["warnings"]
    """
    found = read_predictions(predictions)
    joined = join_outcomes(found, outcomes_csv, question)
    threshold, where = _threshold(question, found, joined)
    settings = OutcomeSettings(threshold, where, question.bootstrap, question.seed, progress)
    log.info("%d patients joined (%s); %s model adjusted for age, age² and %s; bootstrap of %d draws",
             len(joined.frame), "; ".join(joined.notes), question.outcome.kind,
             ", ".join(joined.covariates) or "nothing else", question.bootstrap)
    analysis = analyse_gap(joined.frame, question.outcome, joined.covariates, settings)
    folder = _out_folder(predictions, out)
    summary = without_nan(_summary(analysis, joined, question, found, outcomes_csv))
    write_csv(analysis.effects, folder / "effects.csv")
    write_csv(joined.unmatched, folder / "unmatched.csv")
    write_csv(joined.excluded, folder / "excluded.csv")
    title = f"Age gap and {question.outcome.positive} ({len(joined.frame)} patients, {summary['events']} events)"
    forest_plot(analysis.effects, folder / "forest.png", title)
    adjusted_curves(analysis.fits["gap"], analysis.design, threshold, question.outcome.time,
                    folder / "adjusted_curves.png")
    write_json(summary, folder / RESULT)
    return OutcomeResult(folder, summary, analysis)


def summary_lines(summary: dict) -> list[str]:
    """The analysis in words: rows, the gap's effect, the tests, and every warning."""
    gap, lr, delta = summary["gap"], summary["lr_test"], summary["delta_c"]
    counts = summary["counts"]
    what = "events" if summary["model"] == COX else "positive outcomes"
    lines = [f"{summary['n']} patients analysed, {summary['events']} {what} ({summary['model']} model adjusted for "
             f"{', '.join(summary['adjusted_for'])}); {counts['unmatched_outcome_rows']} outcome rows and "
             f"{counts['unmatched_predictions']} predictions did not join (unmatched.csv)",
             f"gap per year: {gap['measure']} {gap['ratio']:.3f} (95% CI {gap['low']:.3f}-{gap['high']:.3f}, "
             f"p {gap['p']:.2g})",
             f"likelihood-ratio test of adding the gap: chi2 {lr['chi2']:.2f}, p {lr['p']:.2g}",
             f"change in {summary['concordance']['measure']}: {delta['estimate']:+.4f} ({_interval(delta)})"]
    if "ph_test" in summary:
        lines.append(f"proportional hazards: {summary['ph_test']['verdict']}")
    lines += [f"note: {note}" for note in summary["notes"]]
    lines += [f"warning: {warning}" for warning in summary["warnings"]]
    return lines


def _interval(delta: dict) -> str:
    if delta["low"] is None:
        return f"no interval from {delta['draws']} bootstrap draws"
    return f"95% CI {delta['low']:+.4f} to {delta['high']:+.4f}, {delta['draws']} bootstrap draws"


def outcome_results(run: Run) -> list[tuple[Path, dict]]:
    """Every outcome analysis written under a run, oldest first."""
    found = [(path.parent, json.loads(path.read_text())) for path in run.file(OUTCOMES).glob(f"*/{RESULT}")]
    return sorted(found, key=lambda item: item[1].get("written", ""))
