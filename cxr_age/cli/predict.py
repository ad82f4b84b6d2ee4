"""`cxr-age-predict PATH...`: the predicted age of each chest X-ray (PNG, JPEG or DICOM), optionally with
the age-group probabilities of a classifier run and a saliency overlay per image."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cxr_age.bundle.fetch import is_url
from cxr_age.cli.base import Parser, flag_words, run
from cxr_age.cli.options import coverage_level, load_task_model, positive_int, run_or_latest
from cxr_age.config import DEMO_NOTICE
from cxr_age.engines import ENGINES
from cxr_age.errors import CxrAgeError
from cxr_age.io.test_time import MAX_VIEWS, check_views
from cxr_age.run import RUNS_ROOT, Run
from cxr_age.tasks import CLASSIFY, REGRESS

if TYPE_CHECKING:
    from cxr_age.workflows.prediction import Batch
    from cxr_age.workflows.prediction_log import PredictionLog

PROG = "cxr-age-predict"
MODEL_FLAGS = {REGRESS: "--run", CLASSIFY: "--classify-run"}  # the flag that takes a run of each task


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Predict the age of chest X-rays with a trained regressor run (and, optionally, the age-group "
                    "probabilities of a classifier run). PNG, JPEG or DICOM (needs the dicom extra: "
                    "pip install \"cxr-age[dicom]\"); files or folders. DICOM patient identifiers are never read "
                    "into any output.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    parser.add_argument("--run", "--model", dest="run", metavar="RUN|BUNDLE|URL",
                        help="a regress run from cxr-age-train, a bundle from cxr-age-export, or a bundle's URL "
                             f"(default: the newest finished run under {RUNS_ROOT}/)")
    parser.add_argument("--classify-run", "--classify-model", dest="classify_run", metavar="RUN|BUNDLE|URL",
                        help="also give each age group's probability from this classify run or bundle")
    parser.add_argument("--sha256", metavar="HEX",
                        help="the expected SHA-256 of --model's archive (a URL) or of its bundle's manifest.json: "
                             "anything else is refused before it is loaded")
    parser.add_argument("--classify-sha256", metavar="HEX", help="the same for --classify-model")
    parser.add_argument("--engine", choices=ENGINES, default="keras",
                        help="keras (default), or onnx: a bundle's model.onnx in ONNX Runtime, decoded in NumPy and "
                             "OpenCV, without TensorFlow (no --saliency)")
    parser.add_argument("--saliency", action="store_true",
                        help="write a saliency overlay PNG per image (the regressor's vanilla gradients)")
    parser.add_argument("--overlay-dir", metavar="DIR",
                        help="folder for the overlays (default: the --csv file's folder, else the current folder); "
                             "existing files are never overwritten")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    output.add_argument("--csv", metavar="FILE",
                        help="also write the predictions to FILE, batch by batch as they are made (with "
                             "FILE_skipped.csv and FILE_settings.json); if an interrupted run with the same "
                             "settings left FILE, resume it: files already in it are not predicted again")
    parser.add_argument("--age-from-header", action="store_true",
                        help="DICOM: report the age the header records (PatientAge, else StudyDate - "
                             "PatientBirthDate; never the dates themselves) beside the prediction, with the gap "
                             "and whether it lies in the interval")
    parser.add_argument("--any-dicom", action="store_true",
                        help="read DICOM files of any modality, body part and view (by default only CR/DX chest "
                             "radiographs that are not lateral get an age; the others are skipped, naming the field)")
    parser.add_argument("--coverage", type=coverage_level, metavar="P",
                        help="coverage of the age intervals and group sets, calibrated on the run's validation "
                             "split (default: the run's, 0.9)")
    parser.add_argument("--tta", type=views, metavar="N",
                        help=f"test-time spread: also the mean and SD (tta_sd) of the age over N views (2-{MAX_VIEWS}: "
                             "the image and small zooms and shifts, never a flip); a quality-control flag, not a "
                             "confidence interval (the conformal interval is that)")
    parser.add_argument("--batch-size", type=positive_int, default=16, metavar="N",
                        help="images per batch (default 16)")
    parser.add_argument("--read-threads", type=positive_int, metavar="N",
                        help="threads that decode images (default: as many as cores); fewer leave cores to other "
                             "work on a shared machine")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def views(text: str) -> int:
    """The number of test-time views, as a flag's value."""
    try:
        return check_views(int(text))
    except (ValueError, CxrAgeError):
        raise argparse.ArgumentTypeError(f"must be a whole number from 2 to {MAX_VIEWS}, got {text}") from None


def summary_line(name: str, summary: dict) -> str:
    """A model summary (`AgeModel.summary`) as one line: its run, network, test metric beside the baseline's,
    and the demonstration notice."""
    parts = [f"{name}: {summary['run']} ({summary['backbone']}, {summary['image_size']} px)"]
    for key, unit in (("test_mae", " years"), ("test_macro_auc", "")):
        if key in summary:
            value = summary[key]
            low, high = value["ci95"]
            parts.append(f"test {key[5:]} {value['value']:.2f}{unit} (95% CI {low:.2f}-{high:.2f}; "
                         f"baseline {value['baseline']:.2f})")
    if summary["demo"]:
        parts.append(DEMO_NOTICE)
    return "; ".join(parts)


def _text_line(row: dict) -> str:
    line = f"{row['file']}: {row['predicted_age']:.1f} years"
    if "interval_low" in row:
        line += f" ({row['interval_coverage']:.0%} interval {row['interval_low']:.1f}-{row['interval_high']:.1f})"
    if "predicted_group" in row:
        probabilities = ", ".join(f"{key[2:]} {value:.2f}" for key, value in row.items() if key.startswith("p_"))
        line += f"; group {row['predicted_group']} (probabilities: {probabilities})"
        if "prediction_set" in row:
            line += f"; set {{{row['prediction_set'].replace('|', ', ')}}}, expected age {row['expected_age']:.1f}"
    if "tta_sd" in row:
        line += f"; test-time spread sd {row['tta_sd']:.1f} (mean {row['tta_mean_age']:.1f}, {row['tta_views']} views)"
    if row.get("header_age") is not None:
        line += f"; header age {row['header_age']:.1f}, gap {row['age_gap']:+.1f}"
    if "saliency_png" in row:
        line += f"; saliency {row['saliency_png']}"
    return line


def _print_rows(rows: list[dict]) -> None:
    for row in rows:
        print(_text_line(row))


def _where(source: Run | str | None) -> str | None:
    """A model's source as recorded with a folder's predictions: a URL as given, a folder resolved."""
    if source is None or is_url(source):
        return source
    return str(Run.of(source).folder.resolve())


def _settings(args: argparse.Namespace, regress_run: Run | str) -> dict:
    """What the predictions depend on: a resumed --csv run must have the same."""
    # Settings at their defaults are left out, so that files of earlier versions resume.
    engine = {"engine": args.engine} if args.engine != "keras" else {}
    tta = {"tta": args.tta} if args.tta else {}
    return {"run": _where(regress_run), "classify_run": _where(args.classify_run), **engine, **tta,
            "coverage": args.coverage, "age_from_header": args.age_from_header, "any_dicom": args.any_dicom}


def _on_batch(args: argparse.Namespace, log: PredictionLog | None) -> Callable[[Batch], None]:
    from cxr_age.workflows.prediction import predictions_frame

    def handle(batch) -> None:
        if not args.json:
            _print_rows(batch.rows)
        if log is not None:
            log.append(predictions_frame(batch.rows) if batch.rows else pd.DataFrame(), _in_flags(batch.skipped))

    return handle


def _in_flags(skipped: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Skip reasons in the command's words."""
    return [(path, flag_words(reason)) for path, reason in skipped]


def _main(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    regress_run = args.run if args.run and is_url(args.run) else run_or_latest(args.run, REGRESS)
    if args.saliency and args.engine != "keras":
        raise CxrAgeError("--saliency needs --engine keras (tf-keras-vis differentiates the Keras network)")
    from cxr_age.workflows.prediction import Predicting, Reading, predict_paths
    from cxr_age.workflows.prediction_log import PredictionLog

    log = PredictionLog.open(Path(args.csv), _settings(args, regress_run)) if args.csv else None
    regressor = load_task_model(regress_run, REGRESS, (args.sha256, args.engine), MODEL_FLAGS)
    classifier = (load_task_model(args.classify_run, CLASSIFY, (args.classify_sha256, args.engine), MODEL_FLAGS)
                  if args.classify_run else None)
    summaries = {"regressor": regressor.summary(), "classifier": classifier.summary() if classifier else None}
    echo = (lambda line: print(line, file=sys.stderr)) if args.json else print
    for name, summary in summaries.items():
        if summary:
            echo(f"{PROG}: {summary_line(name, summary)}")
    overlay_dir = None
    if args.saliency:
        overlay_dir = Path(args.overlay_dir) if args.overlay_dir else (log.csv.parent if log else Path.cwd())
    how = Predicting(args.batch_size, args.coverage, Reading(args.any_dicom, args.age_from_header, args.read_threads),
                     not args.no_progress, overlay_dir, tta=args.tta)
    result = predict_paths(args.paths, regressor, classifier, how, log.done if log else frozenset(),
                           _on_batch(args, log))
    result.skipped = _in_flags(result.skipped)
    for path, reason in result.skipped:
        print(f"{PROG}: skipped {path}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps({**summaries, "predictions": result.rows,
                          "skipped": result.skipped_frame().to_dict(orient="records")}, indent=2))
    if log is not None:
        log.append(pd.DataFrame(), result.ignored)
    already = f", {result.already} already in {log.csv} (not predicted again)" if result.already else ""
    echo(f"{PROG}: {len(result.rows)} predicted{already}, {len(result.skipped)} unreadable skipped, "
         f"{len(result.ignored)} non-image files ignored" + (f"; wrote {log.csv}" if log else ""))


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
