"""`cxr-age-evaluate RUN [--split test] [--age-gap]`: recompute a saved run's predictions, metrics and
figures, and optionally the age-gap analysis by finding, sex and view; `cxr-age-evaluate RUN --csv TABLE`:
external validation of the run's model on another dataset."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from cxr_age.bundle.bundle import open_model
from cxr_age.bundle.fetch import is_url
from cxr_age.bundle.manifest import is_bundle
from cxr_age.cli.base import Parser, flag_words, run
from cxr_age.cli.options import coverage_level
from cxr_age.errors import CxrAgeError
from cxr_age.io.datasets import DATASET_NAMES
from cxr_age.run import Run

PROG = "cxr-age-evaluate"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Predict a saved run's images with its best model (loaded in Keras "
                                           "safe mode) and rewrite its predictions, metrics.json and figures; with "
                                           "--csv, evaluate the model on another dataset (external validation).")
    parser.add_argument("run", metavar="RUN", help="a run directory written by cxr-age-train (with --csv, also a "
                                                   "bundle from cxr-age-export or its URL)")
    parser.add_argument("--split", choices=("val", "test", "all"), default="all",
                        help="which split to evaluate (default: all = val and test)")
    parser.add_argument("--age-gap", action="store_true",
                        help="regress runs: also write the age gap (predicted - true age), raw and corrected for "
                             "its age trend fitted on the validation split, by finding, sex and view, with a "
                             "Bland-Altman plot (needs both splits, so it evaluates val and test)")
    parser.add_argument("--coverage", type=coverage_level, default=0.9, metavar="P",
                        help="nominal coverage of the regressor's prediction intervals or the classifier's "
                             "prediction sets, calibrated on the validation split (default 0.9)")
    external = parser.add_argument_group(
        "external validation", "predict every eligible image of another dataset with the run's model and write the "
        "run's test metrics, uncertainty, age gap (regress) and figures into RUN/external/<dataset>-<time>/")
    external.add_argument("--csv", metavar="TABLE", help="the other dataset's metadata table")
    external.add_argument("--image-dir", metavar="DIR", help="folder its image paths are relative to")
    external.add_argument("--dataset", choices=DATASET_NAMES, help="its layout (default: detected from its columns)")
    external.add_argument("--patients", metavar="PATH", help="MIMIC-CXR: MIMIC-IV's patients.csv[.gz]")
    external.add_argument("--skip-missing", action="store_true", help="leave out missing image files (counted)")
    external.add_argument("--skip-unreadable", action="store_true", help="leave out undecodable files (counted)")
    return parser


def _external(args: argparse.Namespace) -> None:
    from cxr_age.io.selection import describe_source
    from cxr_age.settings import DataConfig
    from cxr_age.workflows.evaluation import summary_lines
    from cxr_age.workflows.external import ExternalOptions, evaluate_external

    if args.split != "all" or args.age_gap:
        raise CxrAgeError("--split and --age-gap are for the run's own splits; an external evaluation writes "
                          "every image's metrics and, for a regressor, its age gap")
    source = DataConfig(csv=args.csv, image_dir=args.image_dir, dataset=args.dataset, patients=args.patients)
    print(flag_words(f"{PROG}: {args.run} on the {describe_source(source)}"))
    options = ExternalOptions(args.patients, args.skip_missing, args.skip_unreadable, args.coverage)
    folder = evaluate_external(args.run, args.csv, args.image_dir, args.dataset, options)
    result = folder.metrics()
    task = open_model(args.run).task
    print(f"trained on {result['trained_on']}, tested on {result['tested_on']}")
    for line in summary_lines(result, task):
        print(line)
    print(f"wrote {folder}: metrics.json, predictions_external.csv, removed.csv, skipped.csv, figures (*.png)"
          + (", age_gap*.csv, age_gap.json" if task.predicts_age else ""))


def _main(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    if args.csv:
        _external(args)
        return
    from cxr_age.workflows.age_gap import analyse_age_gap
    from cxr_age.workflows.evaluation import evaluate, summary_lines

    if is_url(args.run) or is_bundle(Path(args.run)):
        raise CxrAgeError(f"{args.run} is a bundle: it holds no split of its own to evaluate; validate it on "
                          "another dataset with --csv TABLE")
    evaluated = Run.open(args.run)
    task = evaluated.task
    if args.age_gap:
        if not task.predicts_age:
            raise CxrAgeError(f"{evaluated} is a {task} run: --age-gap needs a regress run's predicted ages")
        if args.split != "all":
            raise CxrAgeError("--age-gap fits its correction on val and reports on test: leave out --split")
    splits = ("val", "test") if args.split == "all" else (args.split,)
    result = evaluate(evaluated, splits, args.coverage)
    print(f"{PROG}: {args.run} ({result['experiment']}, {result['task']})")
    for line in summary_lines(result, task):
        print(line)
    if args.age_gap:
        for line in analyse_age_gap(evaluated).lines():
            print(line)
        print(f"wrote {evaluated}: age_gap.json, age_gap_test.csv, age_gap_by_{{finding,sex,view}}.csv, "
              "bland_altman_test.png, age_gap_vs_age_test.png, age_gap_by_finding_test.png")


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
