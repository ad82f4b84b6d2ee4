"""The two outcome models, from the field's libraries behind one small interface: lifelines' Cox
proportional-hazards model (Efron's method for tied times, lifelines' only one) for a time to an event, and
statsmodels' logistic regression for a binary outcome. Nothing here fits a model by hand: each `Fit` holds
the library's own estimates, covariance, log-likelihood and discrimination (Harrell's C, or the AUC).

A fit that does not converge is tried once more with a small ridge penalty (lifelines' `penalizer`,
statsmodels' L1 path with a tiny weight), and says so: its intervals are then only approximate."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError

COX, LOGISTIC = "cox", "logistic"
PENALTY = 0.1  # lifelines' penalizer (and statsmodels' L1 weight) of the second try


@dataclass(frozen=True)
class OutcomeColumns:
    """The outcome of a frame: `time` and `event` (a Cox model) or `binary` (a logistic one), each 0/1."""

    time: str | None = None
    event: str | None = None
    binary: str | None = None

    @property
    def kind(self) -> str:
        return COX if self.time else LOGISTIC

    @property
    def columns(self) -> list[str]:
        return [self.time, self.event] if self.time else [self.binary]

    @property
    def positive(self) -> str:
        """The 0/1 column whose ones are the events (or positive outcomes)."""
        return self.event if self.time else self.binary


@dataclass
class Fit:
    """One fitted model: coefficients, their covariance, log-likelihood, discrimination, and what the
    library said on the way (`notes`); `penalised` when only the second, penalised try converged."""

    params: pd.Series
    covariance: pd.DataFrame
    loglik: float
    concordance: float
    model: Any
    penalised: bool = False
    notes: list[str] = field(default_factory=list)

    def effect(self, weights: dict[str, float]) -> tuple[float, float]:
        """The linear combination `sum(w * beta)` and its standard error."""
        names = list(weights)
        w = np.array([weights[n] for n in names])
        value = float(w @ self.params[names].to_numpy())
        variance = float(w @ self.covariance.loc[names, names].to_numpy() @ w)
        return value, float(np.sqrt(max(variance, 0.0)))


def _first_sentence(message: Warning | Exception) -> str:
    text = " ".join(str(message).split())
    return text.split(". ")[0].rstrip(".")


def _cox(frame: pd.DataFrame, columns: list[str], outcome: OutcomeColumns, penalizer: float) -> Fit:
    from lifelines import CoxPHFitter

    model = CoxPHFitter(penalizer=penalizer)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        model.fit(frame[columns + outcome.columns], duration_col=outcome.time, event_col=outcome.event)
    notes = [_first_sentence(w.message) for w in said if "ConvergenceWarning" in type(w.message).__name__]
    return Fit(model.params_, model.variance_matrix_, float(model.log_likelihood_), float(model.concordance_index_),
               model, penalizer > 0, notes)


def _logistic(frame: pd.DataFrame, columns: list[str], outcome: OutcomeColumns, penalizer: float) -> Fit:
    import statsmodels.api as sm
    from sklearn.metrics import roc_auc_score

    exog = sm.add_constant(frame[columns].astype(float), has_constant="add")
    model = sm.Logit(frame[outcome.binary].astype(float), exog)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        if penalizer > 0:
            result = model.fit_regularized(alpha=penalizer * 1e-2, disp=0, maxiter=500, trim_mode="off")
        else:
            result = model.fit(disp=0, maxiter=200)
        probabilities = result.predict(exog)  # overflow on the way to 0 or 1 is said, not printed
    notes = [_first_sentence(w.message) for w in said if issubclass(w.category, (RuntimeWarning, UserWarning))
             or "Warning" in w.category.__name__]
    if penalizer == 0 and (not result.mle_retvals.get("converged", True) or
                           any("separation" in note.lower() for note in notes)):
        raise _NotConverged("; ".join(notes) or "the likelihood did not converge")
    auc = float(roc_auc_score(frame[outcome.binary].astype(int), probabilities))
    return Fit(result.params, result.cov_params(), float(result.llf), auc, result, penalizer > 0, notes)


class _NotConverged(Exception):
    pass


def fit_model(frame: pd.DataFrame, columns: list[str], outcome: OutcomeColumns) -> Fit:
    """The outcome model of `columns` on `frame`: unpenalised, or with a small penalty where that fails."""
    fitter = _cox if outcome.kind == COX else _logistic
    try:
        return fitter(frame, columns, outcome, 0.0)
    except Exception as err:  # noqa: BLE001 - lifelines' ConvergenceError, statsmodels' singular or separated fits
        first = err
    try:
        fit = fitter(frame, columns, outcome, PENALTY)
    except Exception as err:  # noqa: BLE001 - both tries failed: one line naming why
        raise CxrAgeError(f"the {outcome.kind} model of {', '.join(columns)} could not be fitted, even with a "
                          f"penalty: {_first_sentence(err)}") from None
    fit.notes = [f"the unpenalised fit failed ({_first_sentence(first)})"]
    return fit
