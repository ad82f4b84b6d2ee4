"""Does the age gap predict an outcome? The analysis of CXR-Age (Raghu et al., JACC Cardiovasc Imaging 2021)
and of Ieki et al. (Commun Med 2022): the gap (predicted minus chronological age) in a Cox model of a time to
an event, or a logistic model of a binary outcome, always beside chronological age (linear and squared) and
sex, view and the user's covariates where present.

The gap regresses to the mean with age (young people are predicted older, old people younger), so a model
without age would credit the gap with age's own effect, reversed: an unadjusted Kaplan-Meier curve by gap
group can show the opposite of the adjusted result. Every model here holds age. What is reported: the gap's
effect per year, per 5 years and per SD, at ages 50, 60 and 70 (from an age x gap term), beyond +/-T years
against within, the likelihood-ratio test of adding the gap, the change in Harrell's C (or the AUC) with a
patient-level bootstrap interval that refits both models, the proportional-hazards test of the gap (scaled
Schoenfeld residuals), and warnings where the numbers should not be trusted: few events per parameter, a
constant covariate, a fit that needed a penalty, non-proportional hazards, and a gap collinear with age (a
model that predicts near the mean makes gap = constant - age, and its "effect" is age's)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from cxr_age.errors import CxrAgeError
from cxr_age.stats.outcome_bootstrap import delta_concordance
from cxr_age.stats.outcome_fits import COX, PENALTY, Fit, OutcomeColumns, fit_model

CENTRE_AGE = 60.0  # ages are centred here for the square and the interaction terms (per decade)
AGES_OF_INTEREST = (50, 60, 70)
MIN_EVENTS_PER_PARAMETER = 10  # Peduzzi et al. 1996
MAX_VIF = 5.0
Z95 = float(stats.norm.ppf(0.975))
BASE_TERMS = ["age", "age_sq"]


@dataclass(frozen=True)
class OutcomeSettings:
    """The threshold T of the categorical contrast (years) and where it came from, and the bootstrap."""

    threshold: float
    threshold_source: str
    bootstrap: int = 200
    seed: int = 0
    progress: bool = True


@dataclass
class Design:
    """The model frame (numeric columns only), the base model's columns, and what was left out and why."""

    frame: pd.DataFrame
    base: list[str]
    warnings: list[str] = field(default_factory=list)
    covariates: list[str] = field(default_factory=list)


def _encoded(values: pd.Series, name: str) -> tuple[pd.DataFrame, str | None]:
    """A covariate as model columns: numbers as they are, text as indicators against its commonest level;
    nothing (with the reason) when it is constant."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        if numbers.nunique() < 2:
            return pd.DataFrame(index=values.index), f"covariate {name} is constant ({numbers.iloc[0]:g}) in the " \
                                                     "analysed rows: left out of the models"
        return numbers.to_frame(name).astype(float), None
    levels = values.astype(str).value_counts()
    if len(levels) < 2:
        return pd.DataFrame(index=values.index), f"covariate {name} is constant ({levels.index[0]!r}) in the " \
                                                 "analysed rows: left out of the models"
    dummies = pd.get_dummies(values.astype(str), prefix=name, prefix_sep="=", dtype=float)
    return dummies.drop(columns=f"{name}={levels.index[0]}"), None


def build_design(frame: pd.DataFrame, outcome: OutcomeColumns, covariates: list[str]) -> Design:
    """Age (years) and its centred square, the gap(s), the outcome and each covariate encoded."""
    age = frame["age"].astype(float)
    parts = [pd.DataFrame({"age": age, "age_sq": ((age - CENTRE_AGE) / 10) ** 2,
                           "gap": frame["gap"].astype(float),
                           "gap_x_age": frame["gap"].astype(float) * (age - CENTRE_AGE) / 10}, index=frame.index)]
    if "corrected_gap" in frame:
        parts.append(frame[["corrected_gap"]].astype(float))
    parts.append(frame[outcome.columns].astype(float))
    base, said, kept = list(BASE_TERMS), [], []
    for name in covariates:
        encoded, reason = _encoded(frame[name], name)
        if reason:
            said.append(reason)
            continue
        parts.append(encoded)
        base += list(encoded.columns)
        kept.append(name)
    return Design(pd.concat(parts, axis=1), base, said, kept)


def _row(term: str, model: str, per: float, fit: Fit, weights: dict[str, float], kind: str) -> dict:
    """One effect as a ratio per `per` units with its 95% interval and Wald p."""
    value, se = fit.effect(weights)
    p = float(2 * stats.norm.sf(abs(value / se))) if se > 0 else float("nan")
    ratio = "HR" if kind == COX else "OR"
    return {"effect": term, "model": model, "per": per, "measure": ratio, "ratio": float(np.exp(value * per)),
            "low": float(np.exp((value - Z95 * se) * per)), "high": float(np.exp((value + Z95 * se) * per)), "p": p}


def _fits(design: Design, outcome: OutcomeColumns) -> dict[str, Fit]:
    frame, base = design.frame, design.base
    fits = {"base": fit_model(frame, base, outcome),
            "gap": fit_model(frame, [*base, "gap"], outcome),
            "age x gap": fit_model(frame, [*base, "gap", "gap_x_age"], outcome)}
    if "gap_above" in frame:
        fits["categorical"] = fit_model(frame, [*base, *[c for c in ("gap_above", "gap_below") if c in frame]],
                                        outcome)
    if "corrected_gap" in frame:
        fits["corrected gap"] = fit_model(frame, [*base, "corrected_gap"], outcome)
    return fits


def _effects(fits: dict[str, Fit], design: Design, settings: OutcomeSettings, kind: str) -> pd.DataFrame:
    sd = float(design.frame["gap"].std())
    rows = [_row("gap per year", "gap", 1, fits["gap"], {"gap": 1.0}, kind),
            _row("gap per 5 years", "gap", 5, fits["gap"], {"gap": 1.0}, kind),
            _row(f"gap per SD ({sd:.1f} years)", "gap", sd, fits["gap"], {"gap": 1.0}, kind)]
    for age in AGES_OF_INTEREST:
        rows.append(_row(f"gap per year at age {age}", "age x gap", 1, fits["age x gap"],
                         {"gap": 1.0, "gap_x_age": (age - CENTRE_AGE) / 10}, kind))
    t = settings.threshold
    for column, words in (("gap_above", f"gap above +{t:.1f} years vs within"),
                          ("gap_below", f"gap below -{t:.1f} years vs within")):
        if "categorical" in fits and column in fits["categorical"].params:
            rows.append(_row(words, "categorical", 1, fits["categorical"], {column: 1.0}, kind))
    if "corrected gap" in fits:
        rows.append(_row("corrected gap per year (validation-fitted correction)", "corrected gap", 1,
                         fits["corrected gap"], {"corrected_gap": 1.0}, kind))
    return pd.DataFrame(rows)


def _contrast_columns(design: Design, threshold: float) -> list[str]:
    """Indicators of a gap beyond +/-T; a side with no row is left out, and said."""
    gap = design.frame["gap"]
    said = []
    for column, mask, words in (("gap_above", gap > threshold, f"above +{threshold:.1f}"),
                                ("gap_below", gap < -threshold, f"below -{threshold:.1f}")):
        if mask.any() and (~mask).any():
            design.frame[column] = mask.astype(float)
        else:
            said.append(f"no analysed row has a gap {words} years: that contrast is not estimated")
    return said


def likelihood_ratio(base: Fit, full: Fit, df: int = 1) -> dict:
    """The likelihood-ratio test of the base model against base + gap."""
    chi2 = max(0.0, 2 * (full.loglik - base.loglik))
    return {"chi2": chi2, "df": df, "p": float(stats.chi2.sf(chi2, df))}


def gap_vif(design: Design) -> float:
    """The variance inflation factor of the gap among age, its square and the covariates."""
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    columns = [*design.base, "gap"]
    exog = np.column_stack([np.ones(len(design.frame)), design.frame[columns].to_numpy(float)])
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(variance_inflation_factor(exog, len(columns)))


def _ph_test(fit: Fit, design: Design, outcome: OutcomeColumns, columns: list[str]) -> dict:
    """The scaled Schoenfeld residual test of each term (rank time), with its verdict for the gap."""
    from lifelines.statistics import proportional_hazard_test

    result = proportional_hazard_test(fit.model, design.frame[columns + outcome.columns], time_transform="rank")
    p = result.summary["p"]
    gap_p = float(p.get("gap", np.nan))
    verdict = ("no evidence against proportional hazards for the gap (p >= 0.05)" if gap_p >= 0.05 else
               "the gap's hazard ratio changes over follow-up (p < 0.05): read it as an average over follow-up")
    return {"method": "scaled Schoenfeld residuals, rank-transformed time", "gap_p": gap_p,
            "p": {str(k): float(v) for k, v in p.items()}, "verdict": verdict}


def _check_outcome(frame: pd.DataFrame, outcome: OutcomeColumns) -> int:
    """The number of events (or positive outcomes); a one-line error where all or none are."""
    events = int(frame[outcome.positive].sum())
    what = "events" if outcome.kind == COX else "positive outcomes"
    if events == 0 or events == len(frame):
        raise CxrAgeError(f"{'all' if events else 'none'} of the {len(frame)} analysed rows have "
                          f"{outcome.positive} = 1: no model can compare {what} with non-{what}")
    if outcome.kind == COX and (frame[outcome.time] <= 0).any():
        raise CxrAgeError(f"{int((frame[outcome.time] <= 0).sum())} analysed rows have a time {outcome.time} <= 0: "
                          "times must be positive")
    return events


def _warnings(design: Design, fits: dict[str, Fit], events: int, vif: float, kind: str) -> list[str]:
    said = list(design.warnings)
    parameters = len(fits["gap"].params) - (0 if kind == COX else 1)  # the intercept is not a predictor
    per = events / max(parameters, 1)
    if per < MIN_EVENTS_PER_PARAMETER:
        said.append(f"only {events} {'events' if kind == COX else 'outcomes in the smaller class'} for "
                    f"{parameters} parameters ({per:.1f} per parameter, fewer than {MIN_EVENTS_PER_PARAMETER}): "
                    "the estimates may be biased and their intervals too narrow")
    penalised = [name for name, fit in fits.items() if fit.penalised]
    if penalised:
        said.append(f"the {', '.join(penalised)} model(s) needed a penalty ({PENALTY:g}) to converge "
                    f"({fits[penalised[0]].notes[0]}): their estimates are shrunk and their intervals approximate; "
                    "a covariate level with few rows, or outcomes separated by one, is the usual cause")
    for name, fit in fits.items():
        said += [f"{name} model: {note}" for note in fit.notes if not fit.penalised]
    if not vif < MAX_VIF:
        said.append(f"the gap is nearly collinear with age and the covariates (variance inflation factor "
                    f"{vif:.1f}): a model that predicts close to the mean makes gap = constant - age, so the "
                    "gap's 'effect' is then age's own effect reversed, an artefact, not a biomarker")
    return said


@dataclass
class OutcomeAnalysis:
    """The result: `summary` (the statistics of `outcomes.json`), `effects` (one row per effect), the fits
    and the model frame they were fitted on."""

    summary: dict
    effects: pd.DataFrame
    fits: dict[str, Fit]
    design: Design


def analyse_gap(frame: pd.DataFrame, outcome: OutcomeColumns, covariates: list[str],
                settings: OutcomeSettings) -> OutcomeAnalysis:
    """The gap's association with the outcome, adjusted for age (linear and squared) and `covariates`.

    Args:
        frame: one row per patient with `age`, `gap` (predicted minus chronological age), optionally
            `corrected_gap`, the outcome's columns (0/1 events, positive times) and the covariates.
        outcome: the time and event columns, or the binary column.
        covariates: columns to adjust for besides age (text is coded as indicators).
        settings: the threshold of the categorical contrast and the bootstrap.

    Examples:
        >>> result = analyse_gap(frame, OutcomeColumns(time="years", event="died"), ["sex"],
        ...                      OutcomeSettings(threshold=5.0, threshold_source="the run's test MAE"))
        >>> result.summary["gap"]["ratio"]
    """
    events = _check_outcome(frame, outcome)
    design = build_design(frame, outcome, covariates)
    design.warnings += _contrast_columns(design, settings.threshold)
    fits = _fits(design, outcome)
    effects = _effects(fits, design, settings, outcome.kind)
    vif = gap_vif(design)
    per_year = effects.iloc[0]
    summary = {
        "model": outcome.kind, "events": events,
        "adjusted_for": [*BASE_TERMS, *design.covariates],
        "gap": {"per": "year", "measure": per_year["measure"], "ratio": per_year["ratio"], "low": per_year["low"],
                "high": per_year["high"], "p": per_year["p"]},
        "lr_test": likelihood_ratio(fits["base"], fits["gap"]),
        "concordance": {"measure": "Harrell's C" if outcome.kind == COX else "AUC",
                        "base": fits["base"].concordance, "with_gap": fits["gap"].concordance},
        "threshold": {"years": settings.threshold, "source": settings.threshold_source},
        "gap_sd": float(design.frame["gap"].std()), "gap_vif": vif,
    }
    estimate = fits["gap"].concordance - fits["base"].concordance
    summary["delta_c"] = delta_concordance(design.frame, design.base, outcome, estimate, settings.bootstrap,
                                           settings.seed, settings.progress)
    if outcome.kind == COX:
        summary["ph_test"] = _ph_test(fits["gap"], design, outcome, [*design.base, "gap"])
    summary["warnings"] = _warnings(design, fits, events, vif, outcome.kind)
    if outcome.kind == COX and summary["ph_test"]["gap_p"] < 0.05:
        summary["warnings"].append(summary["ph_test"]["verdict"])
    return OutcomeAnalysis(summary, effects, fits, design)
