"""The model card of a run, in the sections of Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019):
model details, intended use, training data, evaluation data and metrics, performance by subgroup, and
caveats. Built from counts and metrics only: no split table, image name or patient id goes in."""

from __future__ import annotations

import time

import pandas as pd

from cxr_age import __version__
from cxr_age.config import DEMO_NOTICE
from cxr_age.io.splits import SPLITS
from cxr_age.run import Run

PAPER = ("Karargyris et al., Age prediction using a large chest X-ray dataset, SPIE Medical Imaging 2019 "
         "(arXiv 1903.06542)")
INTENDED = ("Research on the apparent age of the chest: estimating a person's age from an adult or paediatric "
            "frontal (PA or AP) chest radiograph, and studying the gap between that estimate and the recorded "
            "age across findings, sexes and views.")
OUT_OF_SCOPE = ("Any clinical decision: this is not a diagnostic device and has not been evaluated as one. "
                "Lateral views, other body parts and modalities (the DICOM reader refuses them by default), "
                "ages outside the training range, and populations unlike the training data without an external "
                "validation on them.")
FACETS = (("per_group", "true age group"), ("per_view", "view"), ("per_sex", "sex"))


def _training_data(run: Run) -> dict:
    """Counts of the training data by split, its age range, views and sexes, and what was left out and why."""
    splits = {split: run.split(split) for split in SPLITS}
    train = splits["train"]
    removed = pd.read_csv(run.file(Run.REMOVED), keep_default_na=False) if run.file(Run.REMOVED).is_file() else None
    skipped = pd.read_csv(run.file(Run.SKIPPED), keep_default_na=False) if run.file(Run.SKIPPED).is_file() else None
    return {
        "datasets": run.trained_on(),
        "split": "80/10/10 by patient (no patient in two splits), seeded",
        "images": {split: len(frame) for split, frame in splits.items()},
        "patients": {split: int(frame["patient_id"].nunique()) for split, frame in splits.items()},
        "age_range_years": [float(train["age"].min()), float(train["age"].max())],
        "views": {str(k): int(v) for k, v in train["view"].replace("", "not recorded").value_counts().items()},
        "sexes": {str(k): int(v) for k, v in train["sex"].replace("", "not recorded").value_counts().items()},
        "excluded": ({} if removed is None else
                     {str(k): int(v) for k, v in removed["reason"].value_counts().items()}),
        "unreadable_files_left_out": 0 if skipped is None else len(skipped),
        "healthy_only": run.healthy() or False,
    }


def _subgroups(metrics: dict) -> dict:
    return {name: metrics[key] for key, name in FACETS if key in metrics}


def card_facts(run: Run, metrics: dict, external: list[dict]) -> dict:
    """The machine-readable model card (`model_card.json`)."""
    experiment = run.experiment
    task, settings = experiment.task, experiment.train
    test = metrics["splits"]["test"]
    return {
        "model_details": {
            "name": f"cxr-age {task} ({settings.backbone})", "version": f"cxr-age {__version__}",
            "date": time.strftime("%Y-%m-%d"), "reproduces": PAPER, "task": task.name,
            "architecture": f"keras.applications {settings.backbone}, global average pooling, "
                            f"Dense({task.head.units}, {task.head.activation}) named {task.head.layer}",
            "input": f"one grey channel, {experiment.data.image_size} x {experiment.data.image_size} px, float32 "
                     "in [0, 1] (preprocessing.json)",
            "output": "age / 90 through a sigmoid" if task.predicts_age else "probabilities of nine age groups",
            "training": f"loss {settings.loss}, {settings.epochs} epochs at most, batch {settings.batch_size}, "
                        f"weights {settings.weights or 'from scratch'}",
            "licence": "MIT (the cxr-age code and these weights); the training data keep their own terms",
        },
        "intended_use": INTENDED,
        "out_of_scope": OUT_OF_SCOPE,
        "training_data": _training_data(run),
        "evaluation": {"internal_test": {"images": test["images"], "patients": test["patients"],
                                         "model": test["model"], "baseline": test["baseline"],
                                         "uncertainty": metrics.get("uncertainty")},
                       "external": external},
        "performance_by_subgroup": {**_subgroups(test), **({"health": test["by_health"]} if "by_health" in test
                                                             else {})},
        "caveats": _caveats(run),
    }


def _caveats(run: Run) -> list[str]:
    experiment = run.experiment
    caveats = [DEMO_NOTICE] if experiment.train.demo else []
    caveats += [
        f"Ages over {experiment.data.max_age:g} were removed (the paper's filter), and ages a dataset censors "
        "(CheXpert's 90, MIMIC-IV's 91) were left out, so the model has not seen the very old.",
        f"Trained on the {experiment.data.view} view(s) recorded in the tables; lateral views were left out.",
        *([f"Trained, validated and calibrated on healthy images only (the dataset's no-finding label): "
           f"{healthy['train_kept']} training and {healthy['val_kept']} validation images kept, "
           f"{healthy['train_removed'] + healthy['val_removed']} with findings removed; its test error is reported "
           "on the healthy and on the others."] if (healthy := run.healthy()) else []),
        "Intervals are patient-bootstrap 95% intervals; the conformal intervals' coverage is guaranteed only for "
        "images exchangeable with the validation split (other hospitals: see the external validations).",
    ]
    return caveats


def _metric_text(metric: dict) -> str:
    low, high = metric["ci95"]
    return f"{metric['value']:.3f} (95% CI {low:.3f} to {high:.3f})"


def _subgroup_lines(subgroups: dict) -> list[str]:
    lines = []
    for facet, levels in subgroups.items():
        lines += [f"### By {facet}", "", "| level | images | patients | metric | value (95% CI) | baseline |",
                  "|---|---|---|---|---|---|"]
        for level, values in levels.items():
            for name, metric in values.items():
                if isinstance(metric, dict) and "ci95" in metric:
                    lines.append(f"| {level} | {values.get('images', '')} | {values.get('patients', '')} | {name} | "
                                 f"{_metric_text(metric)} | {values.get('baseline_' + name, '')} |")
        lines.append("")
    return lines


def _plain(value: object) -> str:
    """A fact for a reader: counts as `name count, ...`, a range as `low to high`."""
    if isinstance(value, dict):
        return ", ".join(f"{key} {count:,}" if isinstance(count, int) else f"{key} {count}"
                         for key, count in value.items()) or "none"
    if isinstance(value, list):
        return " to ".join(f"{item:g}" for item in value)
    return str(value)


def _facts(facts: dict) -> list[str]:
    return [f"- **{key.replace('_', ' ')}**: {_plain(value)}" for key, value in facts.items()]


def render_markdown(card: dict) -> str:
    """`MODEL_CARD.md`: the card for a reader."""
    details, data, test = card["model_details"], card["training_data"], card["evaluation"]["internal_test"]
    lines = [f"# Model card: {details['name']}", ""]
    lines += [f"> {caveat}" for caveat in card["caveats"][:1] if caveat.startswith("DEMONSTRATION")] + [""]
    lines += ["## Model details", ""] + _facts(details)
    lines += ["", "## Intended use", "", card["intended_use"], "", "## Out of scope", "", card["out_of_scope"]]
    lines += ["", "## Training data", ""] + _facts(data)
    lines += ["", "## Evaluation data and metrics", "",
              f"Internal test split: {test['images']} images of {test['patients']} patients, never used to train "
              "or tune. Each metric with its patient-bootstrap 95% interval, beside the trivial baseline "
              f"({test['baseline']['predicts']}).", "", "| metric | model (95% CI) | baseline |", "|---|---|---|"]
    lines += [f"| {name} | {_metric_text(metric)} | {test['baseline'][name]:.3f} |"
              for name, metric in test["model"].items()]
    for external in card["evaluation"]["external"]:
        lines += ["", f"External validation on {external['tested_on']}: {external['images']} images of "
                      f"{external['patients']} patients.", "", "| metric | model (95% CI) | baseline |",
                  "|---|---|---|"]
        lines += [f"| {name} | {_metric_text(metric)} | {external['baseline'][name]:.3f} |"
                  for name, metric in external["model"].items()]
    lines += ["", "## Performance by subgroup (internal test)", ""] + _subgroup_lines(card["performance_by_subgroup"])
    lines += ["## Caveats", ""] + [f"- {caveat}" for caveat in card["caveats"]]
    return "\n".join(lines) + "\n"
