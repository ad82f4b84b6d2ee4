"""What the web service does with uploaded files, outside the web framework: the models it holds, a private
folder for each request's files (so that they are read by the very decoders `cxr-age-predict` uses, and give
the same ages), the checks made before any decoding, and the prediction of several requests' files as one
batch, answered per request and per file: a file that fails gives its own error entry, never the request's
or the server's.

Uploads reach the disk only in a private folder (mode 0700, in `/dev/shm` where the system has it, so in
memory) under names the service makes (`0003.png`): the client's file name is a label and never part of a
path. Each request's folder is removed when its response is made."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cxr_age.age_model import AgeModel
from cxr_age.config import DEMO_NOTICE
from cxr_age.errors import CxrAgeError
from cxr_age.io.declared_size import declared_pixels
from cxr_age.io.dicom import DICOM_SUFFIXES
from cxr_age.serve.limits import MAX_PIXELS
from cxr_age.serve.uploads import Upload
from cxr_age.workflows.prediction import IMAGE_SUFFIXES, Predicting, Reading, predict_batches

log = logging.getLogger(__name__)
KNOWN_SUFFIXES = IMAGE_SUFFIXES + DICOM_SUFFIXES


@dataclass(frozen=True)
class Job:
    """One request's files in its private folder (`labels`: each stored file's path and the name the client
    gave it), whether it asked for saliency overlays, and the views of its test-time spread (None: none)."""

    folder: Path
    files: list[Path]
    labels: dict[str, str] = field(default_factory=dict)
    saliency: bool = False
    tta: int | None = None


@dataclass
class Outcome:
    """One request's predictions (`file` is the stored file's path) and its files skipped with the reason."""

    rows: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceOptions:
    """How files are read (DICOM of any kind or chest radiographs only), the intervals' coverage (None: the
    run's), images per forward pass, the largest image accepted, and how the library's parameter names are
    written in skip reasons (the command's flags, where it runs from one)."""

    any_dicom: bool = False
    coverage: float | None = None
    batch_size: int = 16
    max_pixels: int = MAX_PIXELS
    wording: Callable[[str], str] = str


def _scratch_root() -> Path:
    """A private folder for this process's uploads: in memory (`/dev/shm`) where the system has it."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="cxr-age-serve-", dir=base))


class AgeService:
    """A regressor, an optional age-group classifier, and what is needed to answer requests with them.

    Examples:
        >>> service = AgeService(AgeModel.load("runs/regress-demo-1a2b3c4d"))
        >>> job, refused = service.store([Upload("study.dcm", data)], saliency=False)
        >>> outcome, = service.predict_jobs([job])
        >>> rows, skipped = service.labelled(job, outcome)
        >>> service.discard(job)
    """

    def __init__(self, regressor: AgeModel, classifier: AgeModel | None = None,
                 options: ServiceOptions = ServiceOptions()) -> None:
        self.regressor = regressor
        self.classifier = classifier
        self.options = options
        self.root = _scratch_root()
        self._maps = None
        self._requests = 0
        self.how = Predicting(options.batch_size, options.coverage,
                              Reading(options.any_dicom, age_from_header=True), progress=False, compiled=True)
        # What `/api/model` says: the models that answer (`AgeModel.summary`), and the notice a demo carries.
        models = {"regressor": regressor.summary(), "classifier": classifier.summary() if classifier else None}
        demo = any(summary and summary["demo"] for summary in models.values())
        self.description = {**models, "engine": regressor.engine.name, "saliency": self.saliency_available,
                            "notice": DEMO_NOTICE if demo else None}

    @property
    def saliency_available(self) -> bool:
        return self.regressor.engine.name == "keras"

    def warm(self) -> None:
        """Trace each network's compiled graph before the first request: Keras traces it for the first two
        batch sizes it meets and then for any size (a DenseNet169 on 2 CPU cores: about 3 s each)."""
        for model in filter(None, (self.regressor, self.classifier)):
            for size in (1, 2):
                model.outputs(np.zeros((size, model.image_size, model.image_size, 1), np.float32), compiled=True)

    def store(self, uploads: Sequence[Upload], saliency: bool, tta: int | None = None,
              ) -> tuple[Job, list[tuple[int, str]]]:
        """The request's readable-looking files written into a new private folder, and the position and reason
        of each refused before decoding (empty, or declaring more pixels than allowed)."""
        self._requests += 1
        folder = Path(tempfile.mkdtemp(prefix=f"r{self._requests}-", dir=self.root))
        job = Job(folder, [], {}, saliency and self.saliency_available, tta)
        refused = []
        for index, upload in enumerate(uploads):
            reason = self._refusal(upload)
            if reason:
                refused.append((index, reason))
                continue
            suffix = Path(upload.label).suffix.lower()
            path = folder / f"{index:04d}{suffix if suffix in KNOWN_SUFFIXES else ''}"
            path.write_bytes(upload.data)
            job.files.append(path)
            job.labels[str(path)] = upload.label
        return job, refused

    def _refusal(self, upload: Upload) -> str | None:
        if not upload.data:
            return "the file is empty"
        pixels = declared_pixels(upload.data, upload.label)
        if pixels is not None and pixels > self.options.max_pixels:
            return (f"its header declares {pixels:,} pixels, over the limit of {self.options.max_pixels:,}; "
                    "refused before decoding")
        return None

    def labelled(self, job: Job, outcome: Outcome) -> tuple[list[dict], list[dict]]:
        """The outcome in the client's words: each file named by its label, in reasons too."""
        rows = [{**row, "file": job.labels[row["file"]]} for row in outcome.rows]
        skipped = [{"file": job.labels[path], "reason": reason.replace(path, job.labels[path])}
                   for path, reason in outcome.skipped]
        return rows, skipped

    def discard(self, job: Job) -> None:
        """Remove the request's folder and everything written into it."""
        shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def predict_jobs(self, jobs: Sequence[Job]) -> list[Outcome]:
        """The files of the jobs that ask for the same test-time spread predicted as one batch; if that fails
        as a whole (a file no decoder foresaw), each file is predicted on its own so that only the file at
        fault is skipped."""
        rows, skipped = [], []
        for tta in dict.fromkeys(job.tta for job in jobs):
            alike = [job for job in jobs if job.tta == tta]
            files = [path for job in alike for path in job.files]
            try:
                more_rows, more_skipped = self._predict(files, {p for job in alike if job.saliency for p in job.files},
                                                        tta)
            except Exception:  # noqa: BLE001 - isolate the file at fault instead of failing every request
                more_rows, more_skipped = self._one_by_one(alike)
            rows += more_rows
            skipped += more_skipped
        by_file = {row["file"]: row for row in rows}
        reasons = dict(skipped)
        return [Outcome([by_file[str(p)] for p in job.files if str(p) in by_file],
                        [(str(p), reasons[str(p)]) for p in job.files if str(p) in reasons]) for job in jobs]

    def _one_by_one(self, jobs: Sequence[Job]) -> tuple[list[dict], list[tuple[str, str]]]:
        rows, skipped = [], []
        for job in jobs:
            for path in job.files:
                try:
                    more_rows, more_skipped = self._predict([path], {path} if job.saliency else set(), job.tta)
                except Exception as err:  # noqa: BLE001 - one file's failure, reported as its skip reason
                    log.warning("a file could not be predicted (%s)", type(err).__name__)
                    more_rows, more_skipped = [], [(str(path), f"could not be predicted: {_first_line(err)}")]
                rows += more_rows
                skipped += more_skipped
        return rows, skipped

    def _predict(self, files: list[Path], with_maps: set[Path], tta: int | None = None,
                 ) -> tuple[list[dict], list[tuple[str, str]]]:
        if not files:
            return [], []
        rows, skipped = [], []
        for batch in predict_batches(files, self.regressor, self.classifier, replace(self.how, tta=tta)):
            wanted = [i for i, row in enumerate(batch.rows) if Path(row["file"]) in with_maps]
            if wanted:
                self._add_maps([batch.rows[i] for i in wanted], batch.images[wanted])
            rows += batch.rows
            skipped += [(path, self.options.wording(reason)) for path, reason in batch.skipped]
        return rows, skipped

    def _add_maps(self, rows: list[dict], images) -> None:
        from cxr_age.saliency.methods import MapSettings, SaliencyMaps  # tf-keras-vis only when asked for
        from cxr_age.saliency.overlay import overlay_png
        from cxr_age.tasks import REGRESS

        if self._maps is None:
            self._maps = SaliencyMaps(self.regressor.network, REGRESS, MapSettings("saliency"))
        for row, image, saliency in zip(rows, images, self._maps(images)):
            png = base64.b64encode(overlay_png(image[..., 0], saliency)).decode("ascii")
            row["saliency_png"] = f"data:image/png;base64,{png}"


def _first_line(err: Exception) -> str:
    text = str(err) if isinstance(err, CxrAgeError) else f"{type(err).__name__}: {err}"
    return (text.strip().splitlines() or [type(err).__name__])[0]
