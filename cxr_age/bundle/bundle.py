"""A model bundle read back: a run folder without its patient-level files. It keeps the run's names for what
it holds (`config.toml` without local paths, `model.keras`, `metrics.json`, `conformal.json` or
`calibration.json`), so everything that reads a run's model reads a bundle's the same way, and adds the
model card, the preprocessing specification, an optional `model.onnx` and a manifest of SHA-256 hashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cxr_age.bundle.fetch import fetch, is_url
from cxr_age.bundle.manifest import MANIFEST, is_bundle, verify
from cxr_age.errors import CxrAgeError
from cxr_age.run import Run
from cxr_age.tasks import Baseline

ONNX = "model.onnx"
PREPROCESSING = "preprocessing.json"
CARD_MARKDOWN = "MODEL_CARD.md"
CARD_JSON = "model_card.json"


class Bundle(Run):
    """A bundle folder whose manifest matched every file when it was opened."""

    @classmethod
    def open(cls, folder: Run | str | os.PathLike, sha256: str | None = None) -> Bundle:
        """The bundle in `folder`, after checking every file against the manifest (and the manifest against
        `sha256`, when given)."""
        bundle = cls(Run.of(folder).folder)
        if not is_bundle(bundle.folder):
            raise CxrAgeError(f"{bundle} holds no bundle {MANIFEST}: export one with cxr-age-export RUN")
        verify(bundle.folder, sha256)
        return bundle

    def saved_splits(self) -> None:
        """A bundle holds no split: that is patient-level data."""
        return None

    def baseline(self) -> Baseline:
        """The trivial predictions fitted on the run's training split, as the bundle recorded them."""
        return Baseline(**self.metrics()["training_baseline"])

    def trained_on(self) -> str:
        return self.card()["training_data"]["datasets"]

    def card(self) -> dict:
        """The machine-readable model card."""
        return json.loads(self.file(CARD_JSON).read_text())



def open_model_folder(folder: Path, sha256: str | None = None) -> Run:
    """A bundle (checked against its manifest and `sha256`) or a finished run (checked for its model and
    split), whichever `folder` holds."""
    if is_bundle(folder):
        return Bundle.open(folder, sha256)
    if sha256 is not None:
        raise CxrAgeError(f"{folder} is a run folder, not a bundle: only a bundle carries the manifest a SHA-256 "
                          "pins (export one with cxr-age-export)")
    return Run.open(folder)


def open_model(source: Run | str | os.PathLike, sha256: str | None = None) -> Run:
    """What `source` names, checked: a run folder, a bundle folder, or a bundle's URL (fetched into the cache
    once; `sha256` is then the archive's)."""
    if isinstance(source, Bundle) and sha256 is None:
        return source  # a Bundle is one whose files matched its manifest when it was opened (its contract)
    if is_url(source):
        return Bundle.open(fetch(str(source), sha256))
    return open_model_folder(Run.of(source).folder, sha256)
