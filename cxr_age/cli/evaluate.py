"""`cxr-age-evaluate RUN [--split test] [--age-gap]`: recompute a saved run's predictions, metrics and
figures, and optionally the age-gap analysis by finding, sex and view."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cxr_age.cli.base import Parser, run
from cxr_age.cli.options import coverage_level
from cxr_age.errors import CxrAgeError
from cxr_age.run_files import demo_note

PROG = "cxr-age-evaluate"


def _main(argv: Sequence[str] | None) -> None:
    parser = Parser(prog=PROG, description="Predict a saved run's images with its best model (loaded in Keras "
                                           "safe mode) and rewrite its predictions, metrics.json and figures.")
    parser.add_argument("run", metavar="RUN", help="a run directory written by cxr-age-train")
    parser.add_argument("--split", choices=("val", "test", "all"), default="all",
                        help="which split to evaluate (default: all = val and test)")
    parser.add_argument("--age-gap", action="store_true",
                        help="regress runs: also write the age gap (predicted - true age), raw and corrected for "
                             "its age trend fitted on the validation split, by finding, sex and view, with a "
                             "Bland-Altman plot (needs both splits, so it evaluates val and test)")
    parser.add_argument("--coverage", type=coverage_level, default=0.9, metavar="P",
                        help="nominal coverage of the regressor's prediction intervals or the classifier's "
                             "prediction sets, calibrated on the validation split (default 0.9)")
    args = parser.parse_args(argv)
    from cxr_age.age_gap import analyse_age_gap, check_age_gap_run
    from cxr_age.evaluation import evaluate, summary_lines

    run_dir = Path(args.run)
    if args.age_gap:
        check_age_gap_run(run_dir)
        if args.split != "all":
            raise CxrAgeError("--age-gap fits its correction on val and reports on test: leave out --split")
    splits = ("val", "test") if args.split == "all" else (args.split,)
    result = evaluate(run_dir, splits, args.coverage)
    print(f"{PROG}: {args.run} ({result['experiment']}, {result['task']})")
    for line in summary_lines(result):
        print(line)
    if args.age_gap:
        for line in analyse_age_gap(run_dir, note=demo_note(result["demo"])).lines():
            print(line)
        print(f"wrote {run_dir}: age_gap.json, age_gap_test.csv, age_gap_by_{{finding,sex,view}}.csv, "
              "bland_altman_test.png, age_gap_vs_age_test.png, age_gap_by_finding_test.png")


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
