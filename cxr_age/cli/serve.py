"""`cxr-age-serve MODEL`: a web page and a JSON API that predict the age of uploaded chest X-rays with a run
or an exported bundle (and the age groups with a classifier), for people who do not write Python. Needs the
serve extra: pip install "cxr-age[serve]"."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Sequence

from cxr_age.bundle.fetch import is_url
from cxr_age.cli.base import Parser, flag_words, run
from cxr_age.cli.options import coverage_level, load_task_model, positive_int, run_or_latest
from cxr_age.cli.predict import summary_line
from cxr_age.engines import ENGINES
from cxr_age.errors import CxrAgeError
from cxr_age.run import RUNS_ROOT
from cxr_age.serve.limits import MAX_PIXELS, MIB, Batching, ServerLimits, UploadLimits
from cxr_age.tasks import CLASSIFY, REGRESS

PROG = "cxr-age-serve"
MODEL_FLAGS = {REGRESS: "MODEL", CLASSIFY: "--classify-model"}


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Serve a page and a JSON API (POST /api/predict, GET /api/model, "
                                           "GET /healthz, GET /openapi.json) that predict the age of uploaded PNG, "
                                           "JPEG and DICOM chest X-rays. Nothing uploaded is kept.")
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="a regress run, a bundle from cxr-age-export, or a bundle's URL (default: the newest "
                             f"finished regress run under {RUNS_ROOT}/)")
    parser.add_argument("--classify-model", metavar="RUN|BUNDLE|URL",
                        help="also give each age group's probability from this classify run or bundle")
    parser.add_argument("--sha256", metavar="HEX", help="the expected SHA-256 of MODEL's archive or manifest.json")
    parser.add_argument("--classify-sha256", metavar="HEX", help="the same for --classify-model")
    parser.add_argument("--engine", choices=ENGINES, default="keras",
                        help="keras (default; saliency overlays), or onnx: a bundle's model.onnx in ONNX Runtime")
    listen = parser.add_argument_group("listening")
    listen.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; anything else is reachable "
                             "from the network, so put a reverse proxy with TLS and sign-in in front)")
    listen.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    listen.add_argument("--root-path", default="", metavar="PATH",
                        help="the path prefix a reverse proxy serves the app under (e.g. /cxr-age)")
    reading = parser.add_argument_group("reading")
    reading.add_argument("--any-dicom", action="store_true",
                         help="read DICOM files of any modality, body part and view (by default only CR/DX chest "
                              "radiographs that are not lateral)")
    reading.add_argument("--coverage", type=coverage_level, metavar="P",
                         help="coverage of the age intervals and group sets (default: the run's, 0.9)")
    _add_limits(parser)
    return parser


UPLOADS, BATCHING = UploadLimits(), Batching()
LIMIT_FLAGS = (  # flag, type, default, help
    ("--max-file-mb", positive_int, UPLOADS.file_bytes // MIB, "largest file accepted, MiB (default %(default)s; "
                                                               "larger: 413)"),
    ("--max-request-mb", positive_int, UPLOADS.request_bytes // MIB, "largest request accepted, MiB (default "
                                                                     "%(default)s; larger: 413)"),
    ("--max-files", positive_int, UPLOADS.files, "most files in one request (default %(default)s; more: 413)"),
    ("--max-pixels", positive_int, MAX_PIXELS, f"largest image its header may declare, in pixels (default "
                                               f"{MAX_PIXELS:,}): larger files are skipped before decoding"),
    ("--queue", positive_int, BATCHING.capacity, "requests in progress at once (default %(default)s); more are "
                                                 "answered 503 with Retry-After"),
    ("--batch-window-ms", float, BATCHING.window * 1000, "how long the first request of a batch waits for "
                                                         "others to join it (default %(default)g)"),
    ("--max-batch", positive_int, BATCHING.max_images, "most images of several requests predicted together "
                                                       "(default %(default)s)"),
    ("--batch-size", positive_int, 16, "images per forward pass (default 16)"),
)


def _add_limits(parser: Parser) -> None:
    limits = parser.add_argument_group("limits and batching")
    for flag, kind, default, text in LIMIT_FLAGS:
        limits.add_argument(flag, type=kind, default=default, metavar="N", help=text)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, so that the URL printed names the port really bound (also for --port 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise CxrAgeError(f"cannot listen on {host}:{port}: {err.strerror} (choose another `port`)") from None
    sock.listen(128)
    return sock


def _local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _service(args):
    from cxr_age.serve.service import AgeService, ServiceOptions

    source = args.model if args.model and is_url(args.model) else run_or_latest(args.model, REGRESS, "MODEL")
    regressor = load_task_model(source, REGRESS, (args.sha256, args.engine), MODEL_FLAGS)
    classifier = (load_task_model(args.classify_model, CLASSIFY, (args.classify_sha256, args.engine), MODEL_FLAGS)
                  if args.classify_model else None)
    options = ServiceOptions(args.any_dicom, args.coverage, args.batch_size, args.max_pixels, flag_words)
    return AgeService(regressor, classifier, options)


def _main(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    try:
        import uvicorn

        from cxr_age.serve.app import create_app
    except ImportError as err:
        raise CxrAgeError(f"cxr-age-serve needs the serve extra ({err.name} is missing): "
                          "pip install \"cxr-age[serve]\"") from None
    sock = _bind(args.host, args.port)
    service = _service(args)
    limits = ServerLimits(UploadLimits(args.max_file_mb * MIB, args.max_request_mb * MIB, args.max_files),
                          Batching(args.batch_window_ms / 1000, args.max_batch, args.queue))
    service.warm()
    app = create_app(service, limits)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    for name in ("regressor", "classifier"):
        if service.description[name]:
            print(f"{PROG}: {summary_line(name, service.description[name])}")
    if not _local(host):
        print(f"{PROG}: listening on {shown}:{port}, which other machines can reach; this server has no sign-in and "
              "no TLS: put it behind a reverse proxy that has both (docs/serve.md)", file=sys.stderr)
    print(f"{PROG}: serving http://{shown}:{port}{args.root_path}/ (Ctrl+C stops)", flush=True)
    config = uvicorn.Config(app, root_path=args.root_path, log_level="info", access_log=True,
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
