"""What `cxr-age-pacs` and `cxr-age-listen` share: the model flags, the models they load (with the summary
line `cxr-age-predict` prints), and the study-date flag's format."""

from __future__ import annotations

import argparse
import logging
import re

from cxr_age.cli.options import load_task_model
from cxr_age.cli.predict import summary_line
from cxr_age.engines import ENGINES
from cxr_age.tasks import CLASSIFY, REGRESS

log = logging.getLogger("cxr_age")
DICOM_DATE = re.compile(r"^\d{8}$")
MODEL_FLAGS = {REGRESS: "--model", CLASSIFY: "--classify-model"}


def study_date(text: str) -> str:
    """A study date as DICOM writes it (YYYYMMDD), as a flag's value; 2024-01-31 is accepted too."""
    date = text.replace("-", "")
    if not DICOM_DATE.match(date):
        raise argparse.ArgumentTypeError(f"must be a date as YYYYMMDD or YYYY-MM-DD, got {text}")
    return date


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="RUN|BUNDLE|URL",
                        help="the regressor: a regress run, a bundle from cxr-age-export, or a bundle's URL")
    parser.add_argument("--sha256", metavar="HEX", help="the expected SHA-256 of --model's archive or manifest")
    parser.add_argument("--classify-model", metavar="RUN|BUNDLE|URL",
                        help="also put each age group's probability from this classifier in the reports")
    parser.add_argument("--engine", choices=ENGINES, default="keras",
                        help="keras (default), or onnx: a bundle's ONNX network in ONNX Runtime, without TensorFlow")


def load_reader(args: argparse.Namespace):
    """The `AgeReader` of the flags' models, after printing what each model is."""
    from cxr_age.pacs.assessment import AgeReader

    regressor = load_task_model(args.model, REGRESS, (args.sha256, args.engine), MODEL_FLAGS)
    log.info(summary_line("model", regressor.summary()))
    classifier = None
    if args.classify_model:
        classifier = load_task_model(args.classify_model, CLASSIFY, (None, args.engine), MODEL_FLAGS)
        log.info(summary_line("classifier", classifier.summary()))
    reader = AgeReader(regressor, classifier)
    log.info(f"model identity (SHA-256 in reports and the ledger): {reader.algorithm.sha256}")
    return reader
