"""`cxr-age-export RUN --out DIR [--onnx] [--zip]`: a finished run as a bundle to hand over: the network, the
preprocessing specification, the intervals or calibration, the metrics, a model card and a manifest of
SHA-256 hashes; no split table, image name or patient id."""

from __future__ import annotations

from collections.abc import Sequence

from cxr_age.cli.base import Parser, run

PROG = "cxr-age-export"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Export a finished, evaluated run as a self-contained bundle with its "
                                           "model card, to load by path or URL (AgeModel.load, cxr-age-predict "
                                           "--model) without the run's patient-level files.")
    parser.add_argument("run", metavar="RUN", help="a run directory written by cxr-age-train (evaluated)")
    parser.add_argument("--out", metavar="DIR", help="the bundle's folder, new or empty (default: a new folder "
                                                     "under runs/)")
    parser.add_argument("--onnx", action="store_true",
                        help="also write model.onnx, for --engine onnx (predicts without TensorFlow; needs the "
                             "onnx extra)")
    parser.add_argument("--zip", action="store_true",
                        help="also write DIR.zip beside the folder and print its SHA-256, to publish by URL")
    return parser


def _main(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    from cxr_age.bundle.export import archive_bundle, export_bundle
    from cxr_age.bundle.manifest import MANIFEST
    from cxr_age.io.files import sha256_of

    folder = export_bundle(args.run, args.out, onnx=args.onnx)
    files = sorted(path.name for path in folder.iterdir())
    print(f"{PROG}: wrote {folder}: {', '.join(files)}")
    print(f"  manifest SHA-256 {sha256_of(folder / MANIFEST)} (pins every file; pass it as --sha256 to check)")
    if args.zip:
        archive, digest = archive_bundle(folder)
        print(f"  wrote {archive}, SHA-256 {digest}: publish it, then cxr-age-predict --model URL --sha256 {digest}")


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
