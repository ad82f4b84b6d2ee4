"""`cxr-age-listen --port P --aet AET --model MODEL --forward AET@HOST:PORT | --stow URL`: a DICOM listener that
a modality or router pushes chest radiographs to; each study's ages go back to the PACS as DICOM SR."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from cxr_age.cli.base import Parser, run
from cxr_age.cli.options import positive_int
from cxr_age.cli.pacs_options import add_model_options, load_reader
from cxr_age.paths import cache_dir

PROG = "cxr-age-listen"
log = logging.getLogger("cxr_age")
MIB = 2 ** 20


def port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), got {text}")
    return value


def ae_titles(text: str) -> tuple[str, ...]:
    titles = tuple(title.strip() for title in text.split(",") if title.strip())
    if not titles or any(len(title) > 16 for title in titles):
        raise argparse.ArgumentTypeError(f"must be AE titles of up to 16 characters, separated by commas, got {text}")
    return titles


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Listen for chest radiographs pushed by DICOM C-STORE (C-ECHO answered), read each study once it "
                    "has been quiet for --study-timeout seconds, and send each age back as a DICOM SR by C-STORE "
                    "(--forward) or STOW-RS (--stow), with retries; what cannot be sent is kept in the dead-letter "
                    "folder and tried again. SIGTERM finishes the studies held. Needs the pacs extra: "
                    "pip install \"cxr-age[pacs]\".",
    )
    parser.add_argument("--port", type=port, required=True, help="TCP port to listen on")
    parser.add_argument("--aet", default="CXRAGE", type=lambda t: ae_titles(t)[0],
                        help="this listener's AE title (default CXRAGE)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0: every interface)")
    add_model_options(parser)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--forward", metavar="AET@HOST:PORT", help="send reports by C-STORE to this DICOM node")
    where.add_argument("--stow", metavar="URL", help="send reports by STOW-RS to this DICOMweb root (credentials from "
                                                     "CXR_AGE_DICOMWEB_USER/_PASSWORD or _TOKEN)")
    parser.add_argument("--allow", type=ae_titles, metavar="AET,...",
                        help="calling AE titles accepted (default: any, and it says so)")
    parser.add_argument("--study-timeout", type=float, default=10.0, metavar="S",
                        help="seconds without a new instance after which a study is read (default 10)")
    parser.add_argument("--max-studies", type=positive_int, default=8, metavar="N",
                        help="studies held at once; more are answered 'out of resources' (default 8)")
    parser.add_argument("--max-mib", type=positive_int, default=512, metavar="N",
                        help="MiB of received instances held at once (default 512)")
    parser.add_argument("--dead-letters", metavar="DIR",
                        help="folder (0700) for reports that could not be delivered (default: under the cache folder)")
    parser.add_argument("--redeliver-every", type=float, default=60.0, metavar="S",
                        help="seconds between tries of the dead-letter folder (default 60)")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from cxr_age.pacs.delivery import StoreScu, Stow
    from cxr_age.pacs.listener import Listener, ListenSettings

    destination = StoreScu(args.forward, args.aet) if args.forward else Stow(args.stow)
    reader = load_reader(args)
    settings = ListenSettings(port=args.port, aet=args.aet, allow=args.allow, host=args.host,
                              study_timeout=args.study_timeout, max_studies=args.max_studies,
                              max_bytes=args.max_mib * MIB, redeliver_every=args.redeliver_every,
                              dead_letters=Path(args.dead_letters or cache_dir() / "pacs" / "dead-letters"))
    listener = Listener(reader, destination, settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    listener.start()
    stop.wait()
    log.info("stopping: finishing the studies held")
    listener.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)
