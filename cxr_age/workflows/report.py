"""One self-contained HTML page per run: the resolved config, data counts per split and age group, metrics
with their intervals beside the baseline and the paper's reported values, the training curves and test
figures, and the saliency and age-gap results when the run has them. Figures are embedded as base64 PNGs and
the page has no scripts, links or external references, so it opens offline and can be mailed as one file."""

from __future__ import annotations

import base64
import html
import json
import os
import time
from pathlib import Path

import pandas as pd

from cxr_age import __version__
from cxr_age.bundle.bundle import CARD_MARKDOWN, Bundle, open_model
from cxr_age.config import DEMO_NOTICE, Experiment
from cxr_age.io.ages import GROUP_LABELS
from cxr_age.io.splits import SPLITS
from cxr_age.run import Run
from cxr_age.saliency.regions import mass_share_table
from cxr_age.tasks import Task
from cxr_age.workflows.outcomes import outcome_results, summary_lines

LITERATURE = (
    ("Sabottke et al. 2020", "CheXpert, DenseNet121", "MAE 4.69 years"),
    ("Ieki et al. 2022", "held-out set, SENet154 at 320 px, >100k CXRs", "MAE 3.67 years"),
    ("Ieki et al. 2022", "same model on PadChest / CheXpert", "MAE 6.0 / 8.7 years"),
    ("our baseline", "NIH, always predicting the median age (49)", "MAE 13.6 years"),
)
STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; font-size: 0.85em; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.demo { background: #fff3cd; border: 1px solid #e0c060; padding: 0.6em; }
.missing { color: #777; font-style: italic; }
"""


def _escape(text: object) -> str:
    return html.escape(str(text))


def _table(frame: pd.DataFrame, index: bool = False) -> str:
    return frame.to_html(index=index, border=0, escape=True, na_rep="-", float_format=lambda x: f"{x:.3f}")


def _figure(path: Path, caption: str) -> str:
    """A PNG embedded as a data URI, or a note that the run has no such file."""
    if not path.is_file():
        return f'<p class="missing">{_escape(caption)}: not in this run ({_escape(path.name)})</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_escape(caption)}</figcaption></figure>")


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_escape(title)}</h2>\n{body}\n</section>'


def _data_counts(run: Run) -> pd.DataFrame:
    """Images per age group and split, with totals and patients per split (a bundle: its card's totals)."""
    if isinstance(run, Bundle):
        data = run.card()["training_data"]
        return pd.DataFrame({"": ["images", "patients"],
                             **{split: [data["images"][split], data["patients"][split]] for split in SPLITS}})
    splits = {split: run.split(split) for split in SPLITS}
    table = pd.DataFrame({split: frame["group"].value_counts().reindex(range(len(GROUP_LABELS)), fill_value=0)
                          for split, frame in splits.items()})
    table.index = list(GROUP_LABELS)
    over = {split: int((frame["group"] < 0).sum()) for split, frame in splits.items()}
    if any(over.values()):
        table.loc["over 90"] = over
    table.loc["images"] = [len(frame) for frame in splits.values()]
    table.loc["patients"] = [frame["patient_id"].nunique() for frame in splits.values()]
    table.index.name = "age group (years)"
    return table.reset_index()


def _metric_rows(metrics: dict) -> pd.DataFrame:
    rows = []
    for split, result in metrics["splits"].items():
        for name, value in result["model"].items():
            rows.append({"split": f"{split} ({result['images']} images, {result['patients']} patients)",
                         "metric": name, "model": value["value"], "95% CI low": value["ci95"][0],
                         "95% CI high": value["ci95"][1], "baseline": result["baseline"][name],
                         "baseline predicts": result["baseline"]["predicts"]})
    return pd.DataFrame(rows)


def _paper_rows(config: Experiment, run: Run) -> str:
    what, paper = config.task.paper_comparison(config.train.loss)
    if paper is None:
        body = f"<p>Paper: {_escape(what)}; this run's curves are below.</p>"
    else:
        history = run.history()
        ours = float(history["val_loss"].min()) if history is not None else float("nan")
        body = _table(pd.DataFrame([{"quantity": what, "paper": paper, "this run": ours}]))
    literature = pd.DataFrame(LITERATURE, columns=["source", "data and model", "result"])
    return (body + "<p>Published age-from-CXR results for context (none on NIH with a patient-level test "
            "split):</p>" + _table(literature))


def _metrics_section(config: Experiment, run: Run, metrics: dict | None) -> str:
    if metrics is None:
        return '<p class="missing">no metrics.json: the run has not been evaluated</p>'
    return _table(_metric_rows(metrics)) + "<h3>Beside the paper</h3>" + _paper_rows(config, run)


def _figures_section(task: Task, run: Run) -> str:
    parts = [("loss_curves.png", "training and validation loss per epoch"), *task.figure_files("test")]
    return "\n".join(_figure(run.file(name), caption) for name, caption in parts)


def _saliency_section(run: Run) -> str:
    folder = run.newest_saliency()
    if folder is None:
        return '<p class="missing">no saliency maps yet (cxr-age-saliency makes them)</p>'
    settings = json.loads((folder / "settings.json").read_text())
    shown = {key: value for key, value in settings.items() if key not in ("groups", "versions", "out", "run")}
    counts = pd.DataFrame(settings["groups"]).T.rename_axis("age group").reset_index()
    parts = [f"<p>Newest analysis: <code>{_escape(folder.name)}</code>; settings:</p>",
             f"<pre>{_escape(json.dumps(shown, indent=2))}</pre>", "<p>Images mapped per group:</p>", _table(counts)]
    grid = folder / "grid.png"
    single = sorted(folder.glob("saliency_*.png"))
    parts.append(_figure(grid if grid.is_file() or not single else single[0], "average saliency map per age group"))
    regions = folder / "regions.csv"
    if regions.is_file():
        table = mass_share_table(pd.read_csv(regions)).round(1)
        parts += ["<p>Share of saliency mass per region (%), all images; area = the region's share of the "
                  "image:</p>", _table(table, index=True)]
    if (folder / "sanity.png").is_file():
        parts.append(_figure(folder / "sanity.png", "randomisation sanity check (Adebayo et al. 2018)"))
    return "\n".join(parts)


def _uncertainty_section(task: Task, run: Run, metrics: dict | None) -> str:
    report = (metrics or {}).get("uncertainty")
    if report is None:
        return (f'<p class="missing">no uncertainty yet: run cxr-age-evaluate {_escape(run)} (it fits the '
                "intervals or the calibration on the validation split)</p>")
    lines = "".join(f"<li>{_escape(line.strip())}</li>" for line in task.uncertainty_lines(report)
                    if not line.startswith("   "))
    stem, caption = task.uncertainty_figure
    return "\n".join([f"<ul>{lines}</ul>", *(_table(table) for table in task.uncertainty_tables(report)),
                      _figure(run.file(f"{stem}_test.png"), caption)])


def _transfer_row(task: Task, trained: str, tested: str, where: str, metrics: dict,
                  uncertainty: dict | None) -> dict:
    """One row of the trained-on / tested-on table: the headline metric with its interval and baseline."""
    name = task.headline_metric
    value = metrics["model"][name]
    row = {"trained on": trained, "tested on": tested, "data": where, "images": metrics["images"],
           "patients": metrics["patients"], "metric": name, "model": value["value"],
           "95% CI low": value["ci95"][0], "95% CI high": value["ci95"][1], "baseline": metrics["baseline"][name]}
    if uncertainty:
        row["interval / set coverage"] = task.coverage(uncertainty)["value"]
    return row


def _external_results(run: Run, metrics: dict | None) -> list[tuple[Run | None, dict]]:
    """A run's external validations (folder, metrics), or those a bundle recorded (no folder)."""
    if not isinstance(run, Bundle):
        return run.external_runs()
    return [(None, {"tested_on": result["tested_on"], "splits": {"external": result},
                    "uncertainty": result.get("uncertainty")}) for result in (metrics or {}).get("external", [])]


def _external_section(task: Task, run: Run, metrics: dict | None) -> str:
    results = _external_results(run, metrics)
    if not results:
        return ('<p class="missing">no external evaluation yet (cxr-age-evaluate with another dataset\'s table '
                "makes one)</p>")
    trained = run.trained_on()
    rows = []
    if metrics is not None and "test" in metrics["splits"]:
        rows.append(_transfer_row(task, trained, trained, "the run's own test split", metrics["splits"]["test"],
                                  metrics.get("uncertainty")))
    for folder, result in results:
        where = folder.name if folder is not None else "recorded in the bundle"
        rows.append(_transfer_row(task, trained, result["tested_on"], where, result["splits"]["external"],
                                  result.get("uncertainty")))
    parts = ["<p>The same model judged on its own test split and on other datasets; baselines are the run's "
             "training median (or majority group), intervals are 95% patient-bootstrap intervals, and the "
             "uncertainty was calibrated on the run's own validation split.</p>", _table(pd.DataFrame(rows))]
    name = task.figure_files("external")[0][0]
    for folder, result in results:
        if folder is not None:
            parts.append(_figure(folder.file(name), f"{result['tested_on']} ({folder.name})"))
    return "\n".join(parts)


def _age_gap_section(run: Run) -> str:
    summary = run.age_gap()
    if summary is None:
        return ('<p class="missing">no age-gap analysis yet (an evaluation with the age gap makes it, for '
                "regress runs)</p>")
    fit = summary["correction"]
    test = summary["test"]
    overall = pd.DataFrame([{"gap": summary["definitions"][name], "mean (years)": value["mean"],
                             "95% CI low": value["ci95_low"], "95% CI high": value["ci95_high"],
                             "correlation with age": test["correlation_with_age"][name]}
                            for name, value in test["mean"].items() if name in summary["definitions"]])
    parts = [f"<p>Test split: {test['images']} images of {test['patients']} patients. Correction fitted on "
             f"{fit['images']} validation images: gap = {fit['intercept']:.2f} + ({fit['slope_per_year']:.3f}) "
             "x age, subtracted from each test image's gap.</p>", _table(overall),
             _figure(run.file("age_gap_vs_age_test.png"), "raw and corrected gap against age"),
             _figure(run.file("bland_altman_test.png"), "Bland-Altman plot, test split")]
    if "beyond_interval" in test["mean"]:
        beyond = test["mean"]["beyond_interval"]
        parts.insert(1, f"<p>True age beyond the run's conformal interval (a gap larger than the model's own "
                        f"error explains): {beyond['mean']:.1%} of test images (95% CI {beyond['ci95_low']:.1%} to "
                        f"{beyond['ci95_high']:.1%}); column mean_beyond_interval below.</p>")
    columns = ["level", "images", "patients", "mean_age", "mean_gap", "mean_corrected_gap",
               "corrected_gap_ci95_low", "corrected_gap_ci95_high", "mean_beyond_interval"]
    for facet in ("finding", "sex", "view"):
        table_file = run.file(f"age_gap_by_{facet}.csv")
        if table_file.is_file():
            table = pd.read_csv(table_file, keep_default_na=False, na_values=[""])
            parts += [f"<h3>By {facet}</h3>", _table(table[[c for c in columns if c in table]])]
    parts.append(_figure(run.file("age_gap_by_finding_test.png"), "corrected gap per finding, 95% CI"))
    return "\n".join(parts)


def _outcomes_section(run: Run) -> str:
    """Each outcome analysis of the run (`cxr-age-outcomes RUN ...`): the gap's effects, tests and warnings."""
    results = outcome_results(run)
    if not results:
        return ('<p class="missing">no outcome analysis yet (cxr-age-outcomes RUN --outcomes TABLE ... writes one '
                "into the run)</p>")
    parts = []
    for folder, summary in results:
        lines = summary_lines(summary)
        parts += [f"<h3>{_escape(folder.name)}: {_escape(summary['outcome_table'])}</h3>",
                  "<ul>" + "".join(f"<li>{_escape(line)}</li>" for line in lines) + "</ul>",
                  _table(pd.read_csv(folder / "effects.csv")),
                  _figure(folder / "forest.png", "the gap's effects, adjusted for age and covariates"),
                  _figure(folder / "adjusted_curves.png", "adjusted curves for a gap of -T, 0 and +T years")]
    return "\n".join(parts)


def build_report(run: Run | str | os.PathLike) -> str:
    """The report page of a run as one HTML string."""
    run = open_model(run)
    config = run.experiment
    task = config.task
    metrics = run.metrics()
    title = f"cxr-age report: {run.name}"
    demo = f'<p class="demo">{_escape(DEMO_NOTICE)}</p>' if config.train.demo else ""
    header = (f"<h1>{_escape(title)}</h1>{demo}<p>Run <code>{_escape(run.folder.resolve())}</code>: "
              f"{_escape(task.name)} with {_escape(config.train.backbone)}, loss {_escape(config.train.loss)}, "
              f"{config.data.image_size} px. Made by cxr-age {_escape(__version__)} on "
              f"{time.strftime('%Y-%m-%d %H:%M')}; reproduces Karargyris et al., SPIE Medical Imaging 2019 "
              "(arXiv 1903.06542).</p>")
    sections = [
        _section("config", "Resolved configuration", f"<pre>{_escape(run.file(Run.CONFIG).read_text())}</pre>"),
        _section("data", "Images per split and age group", _table(_data_counts(run))),
        _section("metrics", "Metrics (95% patient-bootstrap intervals) beside the baseline",
                 _metrics_section(config, run, metrics)),
        _section("figures", "Training curves and test figures", _figures_section(task, run)),
        _section("uncertainty", "How sure the model is (fitted on val, checked on test)",
                 _uncertainty_section(task, run, metrics)),
        _section("saliency", "Saliency", _saliency_section(run)),
        _section("age-gap", "Age gap", _age_gap_section(run)),
        _section("outcomes", "Does the gap predict outcomes? (age-adjusted models)", _outcomes_section(run)),
        _section("external", "External validation: trained on one dataset, tested on another",
                 _external_section(task, run, metrics)),
    ]
    if isinstance(run, Bundle):
        sections.insert(1, _section("card", "Model card", f"<pre>{_escape(run.file(CARD_MARKDOWN).read_text())}</pre>"))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{header}\n" + "\n".join(sections) + "\n</body></html>\n")
