"""Figures of an outcome analysis (`cxr_age.stats.outcomes`): a forest plot of the gap's effects, and curves
adjusted for age and the covariates. Never a raw Kaplan-Meier curve by gap group: the gap regresses to the
mean with age, so such a curve compares ages as much as gaps and can show the opposite of the adjusted
result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxr_age.stats.outcome_fits import Fit
from cxr_age.stats.outcomes import CENTRE_AGE, Design
from cxr_age.viz.figures import new_figure, save_figure


def forest_plot(effects: pd.DataFrame, path: Path, title: str, note: str = "") -> Path:
    """Each effect's ratio with its 95% interval on a log axis, the line of no effect at 1."""
    figure, axes = new_figure(figsize=(7.5, 0.45 * len(effects) + 1.4))
    y = np.arange(len(effects))[::-1]
    axes.errorbar(effects["ratio"], y, xerr=[effects["ratio"] - effects["low"], effects["high"] - effects["ratio"]],
                  fmt="s", color="black", ecolor="gray", capsize=3)
    axes.axvline(1.0, color="tab:red", linestyle="--", linewidth=1)
    axes.set_xscale("log")
    axes.set_yticks(y, [f"{row.effect}: {row.ratio:.3f} ({row.low:.3f}-{row.high:.3f})"
                        for row in effects.itertuples()], fontsize=8)
    axes.set_xlabel(f"{effects['measure'].iloc[0]} (95% CI), log scale; adjusted for age, age² and covariates")
    axes.set_title(title, fontsize=10)
    return save_figure(figure, path, note)


def _typical(design: Design, columns: list[str], gaps: list[float]) -> pd.DataFrame:
    """A typical patient (median age, reference levels, mean numeric covariates) once per gap."""
    age = float(design.frame["age"].median())
    row = {column: float(design.frame[column].mean()) for column in columns}
    row.update({"age": age, "age_sq": ((age - CENTRE_AGE) / 10) ** 2})
    row.update({column: 0.0 for column in columns if "=" in column})
    return pd.DataFrame([{**row, "gap": gap} for gap in gaps])[columns]


def adjusted_curves(fit: Fit, design: Design, threshold: float, time_label: str | None, path: Path,
                    note: str = "") -> Path:
    """Cox: survival of a typical patient (median age, reference covariates) with a gap of -T, 0 and +T
    years, from the fitted model (lifelines' partial effects). Logistic: the outcome's probability against
    age for the same three gaps. `time_label` names the time axis of a Cox model (None: a logistic one)."""
    columns = list(fit.params.index.drop("const", errors="ignore"))
    gaps = [-threshold, 0.0, threshold]
    figure, axes = new_figure(figsize=(6.5, 4.2))
    colours = ("tab:blue", "gray", "tab:red")
    if time_label is not None:
        curves = fit.model.predict_survival_function(_typical(design, columns, gaps))
        for index, gap in enumerate(gaps):
            axes.step(curves.index, curves.iloc[:, index], where="post", color=colours[index],
                      label=f"gap {gap:+.1f} years")
        axes.set_xlabel(f"{time_label} (from the image)")
        axes.set_ylabel("adjusted survival")
        axes.set_title(f"Adjusted survival at age {design.frame['age'].median():.0f} (median)", fontsize=10)
    else:
        ages = np.linspace(design.frame["age"].quantile(0.05), design.frame["age"].quantile(0.95), 50)
        for index, gap in enumerate(gaps):
            people = pd.concat([_typical(design, columns, [gap])] * len(ages), ignore_index=True)
            people["age"], people["age_sq"] = ages, ((ages - CENTRE_AGE) / 10) ** 2
            probability = fit.model.predict(np.column_stack([np.ones(len(ages)), people.to_numpy(float)]))
            axes.plot(ages, probability, color=colours[index], label=f"gap {gap:+.1f} years")
        axes.set_xlabel("chronological age (years)")
        axes.set_ylabel("adjusted probability of the outcome")
        axes.set_title("Adjusted probability by age and gap", fontsize=10)
    axes.legend(fontsize=8)
    return save_figure(figure, path, note)
