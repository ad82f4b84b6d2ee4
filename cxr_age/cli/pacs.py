"""`cxr-age-pacs URL --model MODEL`: the age of every chest radiograph in a DICOMweb archive (QIDO-RS, WADO-RS),
with the results written to a resumable CSV ledger and, with `--store-sr`, stored back as DICOM SR (STOW-RS)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from cxr_age.cli.base import Parser, run
from cxr_age.cli.options import positive_int
from cxr_age.cli.pacs_options import add_model_options, load_reader, study_date
from cxr_age.paths import cache_dir

PROG = "cxr-age-pacs"
log = logging.getLogger("cxr_age")


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Predict the age of the frontal chest radiographs (CR, DX For Presentation; PA or AP; ORIGINAL; "
                    "one frame) in a DICOMweb archive, and optionally store each result back as a DICOM SR. "
                    "Credentials come from the environment only: CXR_AGE_DICOMWEB_USER and "
                    "CXR_AGE_DICOMWEB_PASSWORD, or CXR_AGE_DICOMWEB_TOKEN. Needs the pacs extra: "
                    "pip install \"cxr-age[pacs]\". No patient name, id or birth date is written anywhere but in "
                    "the reports themselves.",
    )
    parser.add_argument("url", metavar="URL", help="the DICOMweb root, e.g. http://pacs.example.org/dicom-web")
    add_model_options(parser)
    parser.add_argument("--since", type=study_date, metavar="DATE", help="first study date (YYYYMMDD)")
    parser.add_argument("--until", type=study_date, metavar="DATE", help="last study date (YYYYMMDD)")
    parser.add_argument("--csv", metavar="FILE",
                        help="the ledger: one row per instance and model (SOP Instance UID, status, reason, age, "
                             "report UID; no names), appended as it goes; a rerun with the same file does nothing "
                             "twice (default: a file per archive under the cache folder, printed)")
    parser.add_argument("--store-sr", action="store_true",
                        help="store each age back in the archive as a DICOM SR (STOW-RS); a rerun stores none twice")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="predict at most N instances in this run")
    parser.add_argument("--batch-size", type=positive_int, default=16, metavar="N",
                        help="instances held in memory and predicted together (default 16)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def default_ledger(url: str) -> Path:
    """One ledger per archive in the cache folder, named by a digest of its URL."""
    return cache_dir() / "pacs" / f"ledger-{hashlib.sha256(url.rstrip('/').encode()).hexdigest()[:16]}.csv"


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from cxr_age.pacs.dicomweb import Archive
    from cxr_age.pacs.pull import PullSettings, pull

    archive = Archive(args.url)
    archive.check()
    reader = load_reader(args)
    ledger = Path(args.csv) if args.csv else default_ledger(archive.url)
    settings = PullSettings(ledger, since=args.since, until=args.until, limit=args.limit,
                            store_reports=args.store_sr, batch_size=args.batch_size)
    result = pull(archive, reader, settings, progress=not args.no_progress)
    for line in result.summary_lines():
        log.info(line)
    log.info(f"ledger: {ledger}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)
