"""`cxr-age-outcomes PREDICTIONS --outcomes TABLE`: does the age gap predict an outcome? A Cox model of a time
to an event, or a logistic model of a binary outcome, adjusted for chronological age, sex, view and the
user's covariates (`cxr_age.workflows.outcomes`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cxr_age.cli.base import Parser, run
from cxr_age.errors import CxrAgeError
from cxr_age.stats.outcome_fits import OutcomeColumns

PROG = "cxr-age-outcomes"


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=(
        "Ask whether the age gap (predicted minus chronological age) predicts an outcome: a Cox model (lifelines, "
        "Efron ties) of --time and --event, or a logistic model (statsmodels) of --binary, always adjusted for "
        "chronological age (linear and squared), and for sex, view and --covariates where present. Writes "
        "outcomes.json, effects.csv, unmatched.csv, excluded.csv, forest.png and adjusted_curves.png."))
    parser.add_argument("predictions", metavar="PREDICTIONS",
                        help="a regress run (its test split), an external validation folder (RUN/external/NAME) or "
                             "a CSV written by cxr-age-predict --csv")
    parser.add_argument("--outcomes", required=True, metavar="TABLE", help="CSV with the join key, age and outcome")
    kind = parser.add_argument_group("the outcome (either --time and --event, or --binary)")
    kind.add_argument("--time", metavar="COL", help="follow-up time from the image (any positive unit)")
    kind.add_argument("--event", metavar="COL", help="1 if the event happened, 0 if censored (yes/no words too)")
    kind.add_argument("--binary", metavar="COL", help="a binary outcome: 1/0, y/n, yes/no, true/false")
    kind.add_argument("--positive", metavar="VALUE",
                      help="the value of --event or --binary that is the outcome (e.g. N for a survival column of "
                           "Y/N); the other yes/no words count as 0, anything else as not recorded")
    join = parser.add_argument_group("the join and the columns")
    join.add_argument("--on", choices=("image", "patient_id"), default="image",
                      help="join on the image's file name (default) or the patient id")
    join.add_argument("--image-column", default="image", metavar="COL", help="the table's file names (default image)")
    join.add_argument("--patient-column", default="patient_id", metavar="COL",
                      help="the table's patient ids (default patient_id)")
    join.add_argument("--age", default="age", metavar="COL", help="chronological age in years (default age)")
    join.add_argument("--covariates", metavar="A,B", default="",
                      help="more columns to adjust for (sex and view are adjusted for wherever present)")
    join.add_argument("--date", metavar="COL",
                      help="keep each patient's earliest image by this column (default: the longest follow-up, or "
                           "the first row for a binary outcome)")
    analysis = parser.add_argument_group("the analysis")
    analysis.add_argument("--threshold", type=_positive_float, metavar="YEARS",
                          help="T of the contrast gap > +T and gap < -T against within (default: the model's test "
                               "MAE)")
    analysis.add_argument("--bootstrap", type=_non_negative, default=200, metavar="N",
                          help="patient bootstrap draws for the change in C or AUC (default 200; each refits both "
                               "models)")
    analysis.add_argument("--seed", type=int, default=0, metavar="N", help="the bootstrap's seed (default 0)")
    analysis.add_argument("--out", metavar="DIR",
                          help="a new or empty folder (default: RUN/outcomes/<time>, or runs/outcomes/<time>)")
    analysis.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def outcome_columns(args: argparse.Namespace) -> OutcomeColumns:
    """The outcome the flags name: a time and an event, or a binary column, never both."""
    if args.binary and (args.time or args.event):
        raise CxrAgeError("give either `time` and `event` (a time to an event) or `binary`, not both")
    if args.binary:
        return OutcomeColumns(binary=args.binary)
    if not (args.time and args.event):
        raise CxrAgeError("name the outcome: `time` and `event` together, or `binary`")
    return OutcomeColumns(time=args.time, event=args.event)


def _main(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    from cxr_age.workflows.outcome_inputs import OutcomeQuestion
    from cxr_age.workflows.outcomes import analyse_outcomes, summary_lines

    covariates = tuple(name.strip() for name in args.covariates.split(",") if name.strip())
    question = OutcomeQuestion(outcome_columns(args), args.on, args.image_column, args.patient_column, args.age,
                               covariates, args.positive, args.date, args.threshold, args.bootstrap, args.seed)
    result = analyse_outcomes(args.predictions, args.outcomes, question, args.out, not args.no_progress)
    for line in summary_lines(result.summary):
        print(line)
    print(f"wrote {result.folder}: outcomes.json, effects.csv, unmatched.csv, excluded.csv, forest.png, "
          "adjusted_curves.png")


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
