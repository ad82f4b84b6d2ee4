"""`cxr-age-report RUN`: one self-contained HTML page of a run, which opens with no network access."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cxr_age.cli.base import Parser, run
from cxr_age.errors import CxrAgeError

PROG = "cxr-age-report"


def _main(argv: Sequence[str] | None) -> None:
    parser = Parser(prog=PROG, description="Write one self-contained HTML report of a run (figures embedded, no "
                                           "scripts or links, opens offline): config, data counts, metrics beside "
                                           "the baseline and the paper, curves, ROC, saliency and age gap.")
    parser.add_argument("run", metavar="RUN", help="a run directory written by cxr-age-train, or a bundle from "
                                                   "cxr-age-export (a folder or its URL)")
    parser.add_argument("--out", metavar="FILE",
                        help="where to write the page (default: RUN/report.html, replaced when the report is "
                             "made again; for a bundle, which is never written into, report-<bundle>.html here; "
                             "a named FILE must not exist yet)")
    args = parser.parse_args(argv)
    from cxr_age.bundle.bundle import Bundle, open_model
    from cxr_age.io.files import write_text
    from cxr_age.run import Run
    from cxr_age.workflows.report import build_report

    reported = open_model(args.run)
    bundle = isinstance(reported, Bundle)
    out = Path(args.out or (f"report-{reported.name}.html" if bundle else reported.file(Run.REPORT)))
    if (args.out or bundle) and out.exists():
        raise CxrAgeError(f"{out} already exists; choose another --out (nothing is overwritten)")
    page = build_report(reported)
    write_text(page, out)
    print(f"{PROG}: wrote {out} ({len(page.encode()) / 1e6:.1f} MB, self-contained; open it in any browser)")


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
