"""The inputs of an outcome analysis, made into one row per patient: a model's predictions (a run's test
split, an external validation's images, or a `cxr-age-predict --csv` file), the user's outcome table, and
their join on the image's file name or the patient id. Nothing is dropped silently: rows that do not join,
rows whose outcome, time, age or covariate is not recorded, and the later images of a patient are each
counted, named in `unmatched.csv` / `excluded.csv`, and said."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.datasets.base import read_text_table
from cxr_age.run import Run
from cxr_age.stats.age_gap import Correction, fit_correction
from cxr_age.stats.outcome_fits import COX, OutcomeColumns

YES = {"1", "1.0", "y", "yes", "true", "t"}
NO = {"0", "0.0", "n", "no", "false", "f"}
IMAGE, PATIENT = "image", "patient_id"
AUTOMATIC_COVARIATES = ("sex", "view")  # adjusted for wherever the data has them


@dataclass(frozen=True)
class OutcomeQuestion:
    """What to ask of the predictions: the outcome, the join, the columns, and the analysis's settings.

    Attributes:
        outcome: `OutcomeColumns(time=, event=)` or `OutcomeColumns(binary=)`.
        on: join on `image` (the file's name) or `patient_id`.
        image_column, patient_column, age: the outcome table's columns of each.
        covariates: further columns to adjust for (sex and view are adjusted for wherever present).
        positive: the value of the event or binary column that counts as the outcome (default: 1, y, yes,
            true; the other of those words count as 0).
        date: a column whose earliest value picks each patient's image (default: the longest follow-up for a
            time to an event, else the table's order).
        threshold: T of the contrast beyond +/-T years (default: the model's test MAE).
        bootstrap, seed: draws of the patient bootstrap of the change in C, and its seed.
    """

    outcome: OutcomeColumns
    on: str = IMAGE
    image_column: str = IMAGE
    patient_column: str = PATIENT
    age: str = "age"
    covariates: tuple[str, ...] = ()
    positive: str | None = None
    date: str | None = None
    threshold: float | None = None
    bootstrap: int = 200
    seed: int = 0


@dataclass
class ModelPredictions:
    """Predicted ages keyed by file name (and patient id where known), where they came from, the model's
    test MAE (the contrast's default threshold), and the gap's age trend fitted on the model's validation
    split (a run's; a predictions file has none)."""

    frame: pd.DataFrame
    source: str
    test_mae: float | None = None
    correction: Correction | None = None


def _run_mae(run: Run) -> float | None:
    test = ((run.metrics() or {}).get("splits") or {}).get("test")
    return float(test["model"]["mae"]["value"]) if test and "mae" in test.get("model", {}) else None


def _from_run(folder: Path) -> ModelPredictions:
    """A run's test predictions, or an external validation's (`RUN/external/NAME`), with the run's MAE and
    validation-fitted correction."""
    here = Run(folder)
    external = here.predictions("external")
    run = Run(folder.parent.parent) if external is not None else here
    frame = external if external is not None else here.predictions("test")
    if frame is None or "predicted_age" not in frame:
        raise CxrAgeError(f"{folder} holds no regressor's predictions (predictions_test.csv or "
                          "predictions_external.csv with predicted_age): evaluate a regress run first")
    val = run.predictions("val")
    correction = fit_correction(val) if val is not None and "predicted_age" in val else None
    which = "external validation" if external is not None else "test split"
    return ModelPredictions(frame, f"{folder} ({which})", _run_mae(run), correction)


def _from_csv(path: Path) -> ModelPredictions:
    """A `cxr-age-predict --csv` file (or any CSV with `file` or `image` and `predicted_age`)."""
    frame = read_text_table(path)
    if "image" not in frame and "file" in frame:
        frame = frame.rename(columns={"file": IMAGE})
    missing = [c for c in (IMAGE, "predicted_age") if c not in frame]
    if missing:
        raise CxrAgeError(f"{path} lacks the column(s) {', '.join(missing)}: expected predictions written by "
                          "cxr-age-predict --csv (file, predicted_age, ...)")
    settings = path.with_name(f"{path.stem}_settings.json")
    run = json.loads(settings.read_text()).get("run") if settings.is_file() else None
    mae = _run_mae(Run(run)) if run and Path(run).is_dir() else None
    return ModelPredictions(frame, str(path), mae)


def file_name(path: object) -> str:
    """The file name a join on images compares: the last part of a path, with either separator."""
    return PurePath(str(path).replace("\\", "/")).name


def read_predictions(source: str | Path) -> ModelPredictions:
    """Predicted ages from a run folder, an external validation folder, or a predictions CSV."""
    path = Path(source)
    if path.is_dir():
        found = _from_run(path)
    elif path.is_file():
        found = _from_csv(path)
    else:
        raise CxrAgeError(f"{source}: no such run, external validation folder or predictions CSV")
    frame = found.frame.copy()
    frame["predicted_age"] = pd.to_numeric(frame["predicted_age"], errors="coerce")
    frame["join_image"] = frame[IMAGE].map(file_name)
    found.frame = frame
    return found


@dataclass
class Joined:
    """The analysable rows (one per patient), and every row left out with its reason."""

    frame: pd.DataFrame
    unmatched: pd.DataFrame
    excluded: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    covariates: list[str] = field(default_factory=list)


def _require(table: pd.DataFrame, columns: list[str], where: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in table]
    if missing:
        raise CxrAgeError(f"{where} lacks the column(s) {', '.join(missing)}; it has: "
                          f"{', '.join(map(str, list(table.columns)[:20]))}")


def _join(table: pd.DataFrame, predictions: ModelPredictions, question: OutcomeQuestion,
          where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The inner join, and the rows of either side that found no partner."""
    preds = predictions.frame
    if question.on == IMAGE:
        _require(table, [question.image_column], where)
        left = table.assign(join_image=table[question.image_column].map(file_name))
        key = "join_image"
    else:
        _require(table, [question.patient_column], where)
        if PATIENT not in preds:
            raise CxrAgeError(f"{predictions.source} has no patient_id column to join on (a predictions CSV names "
                              "files only): join on image")
        left, key = table.assign(join_patient=table[question.patient_column]), "join_patient"
        preds = preds.assign(join_patient=preds[PATIENT].astype(str))
    right = preds.drop(columns=[c for c in preds if c in left and c != key])
    merged = left.merge(right, on=key, how="outer", indicator=True)
    unmatched = pd.concat([
        pd.DataFrame({"key": merged.loc[merged["_merge"] == "left_only", key], "side": "outcome table",
                      "reason": "no prediction for this row"}),
        pd.DataFrame({"key": merged.loc[merged["_merge"] == "right_only", key], "side": "predictions",
                      "reason": "no outcome row for this prediction"})], ignore_index=True)
    joined = merged[merged["_merge"] == "both"].drop(columns="_merge").reset_index(drop=True)
    if joined.empty:
        raise CxrAgeError(f"no row of {where} joins the predictions on {question.on} (first keys: outcome table "
                          f"{', '.join(left[key].astype(str).head(3))}; predictions "
                          f"{', '.join(preds[key].astype(str).head(3))})")
    return joined, unmatched


def _zero_one(values: pd.Series, positive: str | None) -> pd.Series:
    """0/1 from yes/no words, or from `positive` (1) against the other yes/no words (0); NaN otherwise."""
    words = values.astype(str).str.strip()
    lower = words.str.lower()
    if positive is None:
        return pd.Series(np.where(lower.isin(YES), 1.0, np.where(lower.isin(NO), 0.0, np.nan)), index=values.index)
    chosen = words == positive
    other = ~chosen & (lower.isin(YES) | lower.isin(NO))
    return pd.Series(np.where(chosen, 1.0, np.where(other, 0.0, np.nan)), index=values.index)


class _Exclusions:
    """Rows taken out one reason at a time, each kept with its key and reason."""

    def __init__(self, frame: pd.DataFrame, key: str) -> None:
        self.frame, self.key, self.parts, self.counts = frame, key, [], {}

    def remove(self, mask: pd.Series, name: str, reason: str) -> None:
        self.counts[f"excluded_{name}"] = int(mask.sum())
        if mask.any():
            self.parts.append(pd.DataFrame({"key": self.frame.loc[mask, self.key], "reason": reason}))
        self.frame = self.frame[~mask]

    def table(self) -> pd.DataFrame:
        return pd.concat(self.parts, ignore_index=True) if self.parts else pd.DataFrame(columns=["key", "reason"])


def _values(column: pd.Series) -> str:
    counts = column.astype(str).replace("", "(blank)").value_counts().head(4)
    return ", ".join(f"{value!r} {count}" for value, count in counts.items())


def _clean(rows: _Exclusions, question: OutcomeQuestion, covariates: list[str]) -> None:
    """Numbers and 0/1 outcomes; rows with any of them not recorded are excluded, naming the column."""
    raw, outcome = rows.frame, question.outcome
    sources = {"age": question.age if question.age in raw else "age", "predicted_age": "predicted_age",
               outcome.positive: outcome.positive}
    coded = {"age": pd.to_numeric(raw[sources["age"]], errors="coerce"),
             "predicted_age": pd.to_numeric(raw["predicted_age"], errors="coerce"),
             outcome.positive: _zero_one(raw[outcome.positive], question.positive)}
    if outcome.kind == COX:
        sources[outcome.time] = outcome.time
        coded[outcome.time] = pd.to_numeric(raw[outcome.time], errors="coerce")
    for column, values in coded.items():
        missing = values[rows.frame.index].isna()
        words = _values(rows.frame.loc[missing, sources[column]])
        rows.remove(missing, column, f"{sources[column]} not recorded or not understood ({words})")
    for column in covariates:
        blank = rows.frame[column].astype(str).str.strip().isin(("", "?", "nan"))
        rows.remove(blank, column, f"covariate {column} not recorded")
    frame = rows.frame.copy()
    for name, values in coded.items():
        frame[name] = values[frame.index].astype(float)
    rows.frame = frame


def _dates(values: pd.Series) -> pd.Series:
    """Dates or numbers (days from an index event, say) in order; unreadable ones last."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().sum() >= (values.astype(str).str.strip() != "").sum():
        return numbers
    return pd.to_datetime(values, errors="coerce", format="mixed")


def _one_per_patient(rows: _Exclusions, question: OutcomeQuestion, patients: str) -> str:
    """Each patient's first image, by `date`, else the longest follow-up (Cox), else the table's order."""
    frame = rows.frame
    if question.date:
        order, rule, ascending = _dates(frame[question.date]), f"the earliest {question.date}", True
    elif question.outcome.kind == COX:
        order, rule, ascending = frame[question.outcome.time], f"the longest {question.outcome.time}", False
    else:
        order, rule, ascending = pd.Series(np.arange(len(frame)), index=frame.index), "the first in the table", True
    ranked = frame.assign(_order=order).sort_values("_order", ascending=ascending, kind="stable", na_position="last")
    later = ranked[patients].duplicated(keep="first")
    rows.remove(later.reindex(frame.index), "later_image", f"a later image of the same patient (one image per "
                                                           f"patient: {rule})")
    return f"one image per patient: {rule}"


def join_outcomes(predictions: ModelPredictions, table_csv: str | Path, question: OutcomeQuestion) -> Joined:
    """The predictions joined to the outcome table, cleaned, one row per patient, with the gap.

    Examples:
        >>> joined = join_outcomes(read_predictions("preds.csv"), "outcomes.csv",
        ...                        OutcomeQuestion(OutcomeColumns(binary="died")))
    """
    table = read_text_table(Path(table_csv))
    where = f"the outcome table {table_csv}"
    outcome = question.outcome
    _require(table, [*outcome.columns, *question.covariates, *([question.date] if question.date else [])], where)
    joined, unmatched = _join(table, predictions, question, where)
    notes = []
    if question.age not in table:
        if "age" not in joined:
            raise CxrAgeError(f"{where} lacks the age column {question.age!r} (name it with `age`), and the "
                              "predictions carry no age")
        notes.append(f"chronological age from the predictions' age column ({predictions.source})")
    covariates = [*[c for c in AUTOMATIC_COVARIATES if c in joined and c not in question.covariates],
                  *question.covariates]
    patients = question.patient_column if question.patient_column in joined else PATIENT
    if patients not in joined:
        joined[PATIENT] = joined["join_image"]
        patients = PATIENT
        notes.append("no patient id: every image is counted as its own patient")
    rows = _Exclusions(joined, "join_image" if question.on == IMAGE else "join_patient")
    _clean(rows, question, covariates)
    notes.append(_one_per_patient(rows, question, patients))
    frame = rows.frame.reset_index(drop=True)
    frame["gap"] = frame["predicted_age"] - frame["age"]
    if predictions.correction is not None:
        frame["corrected_gap"] = frame["gap"] - predictions.correction.trend(frame["age"].to_numpy(float))
    counts = {"outcome_rows": len(table), "predictions": len(predictions.frame), "joined": len(joined),
              "unmatched_outcome_rows": int((unmatched["side"] == "outcome table").sum()),
              "unmatched_predictions": int((unmatched["side"] == "predictions").sum()), **rows.counts}
    return Joined(frame.rename(columns={patients: "patient"}), unmatched, rows.table(), counts, notes, covariates)
