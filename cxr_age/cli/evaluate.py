"""`cxr-age-evaluate RUN [--split test]`: recompute a saved run's predictions, metrics and figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cxr_age.cli.base import Parser, run

PROG = "cxr-age-evaluate"


def _main(argv: Sequence[str] | None) -> None:
    parser = Parser(prog=PROG, description="Predict a saved run's images with its best model (loaded in Keras "
                                           "safe mode) and rewrite its predictions, metrics.json and figures.")
    parser.add_argument("run", metavar="RUN", help="a run directory written by cxr-age-train")
    parser.add_argument("--split", choices=("val", "test", "all"), default="all",
                        help="which split to evaluate (default: all = val and test)")
    args = parser.parse_args(argv)
    from cxr_age.evaluation import evaluate_run, summary_lines

    splits = ("val", "test") if args.split == "all" else (args.split,)
    result = evaluate_run(Path(args.run), splits)
    print(f"{PROG}: {args.run} ({result['experiment']}, {result['task']})")
    for line in summary_lines(result):
        print(line)


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
