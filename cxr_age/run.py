"""A run as one object: the folder a training run writes (in the manner of a MONAI bundle, a folder with a
small manifest that one loader reads), its file names, its creation, locking and resumption, and reading
everything in it: settings, splits, predictions, network, intervals or calibration, and the external
validations, saliency analyses and age-gap analysis made of it since.

Every command and library call that reads a run goes through `Run`; nothing else opens a run's files by
name. A run made by an earlier version (no manifest) reads the same way.

Examples:
    >>> run = Run.open("runs/regress-demo-1a2b3c4d")
    >>> run.task.name, run.experiment.data.image_size
    ('regress', 128)
    >>> run.metrics()["splits"]["test"]["model"]["mae"]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cxr_age.config import Experiment, load_experiment, to_toml
from cxr_age.errors import CxrAgeError
from cxr_age.io.files import claim_folder, folder_lock, new_folder, write_csv, write_json, write_text
from cxr_age.io.splits import SPLITS, check_disjoint
from cxr_age.stats.calibration import Calibration
from cxr_age.stats.conformal import AgeIntervals
from cxr_age.tasks import Baseline, Task

if TYPE_CHECKING:
    import keras

RUNS_ROOT = Path("runs")
MANIFEST_FORMAT = 1
TEXT_COLUMNS = {"patient_id": str, "image": str, "sex": str, "view": str, "findings": str, "dataset": str}


class Run:
    """One run folder. `Run(folder)` names it; `Run.open(folder)` also checks that it holds a model and an
    intact split. A `Run` stands wherever a path does (`os.fspath(run)`, `run / "metrics.json"`)."""

    CONFIG = "config.toml"
    MODEL = "model.keras"  # the best model for inference: weights and architecture, no optimizer state
    HISTORY = "history.csv"
    METRICS = "metrics.json"
    MANIFEST = "manifest.json"
    SKIPPED = "skipped.csv"  # listed image files that are missing or cannot be decoded
    REMOVED = "removed.csv"  # rows a filter took out (implausible or censored age, lateral view, ...), with why
    BACKUP = "backup"  # Keras's training backup: everything resuming needs, the optimizer state included
    TENSORBOARD = "tensorboard"
    CONFORMAL = "conformal.json"  # the regressor's prediction intervals, calibrated on val
    CALIBRATION = "calibration.json"  # the classifier's temperature and prediction-set threshold, fitted on val
    EXTERNAL = "external"  # external validations, one folder each, laid out as a run's evaluation
    HEALTHY = "healthy.json"  # a healthy-only run's images kept and removed per split (cxr_age.io.healthy)
    SALIENCY = "saliency"  # saliency analyses, one folder each
    AGE_GAP = "age_gap.json"
    REPORT = "report.html"

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def __fspath__(self) -> str:
        return os.fspath(self.folder)

    def __str__(self) -> str:
        return str(self.folder)

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.folder / name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.folder == self.folder

    def __hash__(self) -> int:
        return hash(self.folder)

    @property
    def name(self) -> str:
        return self.folder.name

    @classmethod
    def of(cls, run: Run | str | os.PathLike) -> Run:
        """`run` as a `Run` (a path names one)."""
        return run if isinstance(run, Run) else cls(run)

    @classmethod
    def open(cls, run: Run | str | os.PathLike) -> Run:
        """A finished run: a folder with a model and an intact split (checked before anything slow)."""
        run = cls.of(run)
        if not run.folder.is_dir():
            raise CxrAgeError(f"run directory not found: {run}")
        if not run.file(cls.MODEL).is_file():
            raise CxrAgeError(f"{run} holds no {cls.MODEL}: train first with cxr-age-train")
        run.check_splits()
        return run

    @classmethod
    def for_training(cls, experiment: Experiment, out: str | os.PathLike | None, suffix: str = "",
                     root: Path = RUNS_ROOT) -> tuple[Run, bool]:
        """The folder of a training run and whether it resumes an interrupted one. With `out`: a new or empty
        folder, or an interrupted run of the same settings. Without: `<root>/<task>-<name><suffix>-<hash of
        the settings>[-N]`, so that the same call finds its own interrupted run again; a finished run is never
        reused. `suffix` marks a multi-worker run's non-chief folders."""
        settings = to_toml(experiment)

        def resumable(folder: Path) -> bool:
            run = cls(folder)
            saved = run.file(cls.CONFIG)
            return saved.is_file() and saved.read_text() == settings and not run.file(cls.METRICS).exists()

        if out:
            if resumable(Path(out)):
                return cls(out), True
            return cls(new_folder(out, experiment.train.task, root)), False
        digest = hashlib.sha1(settings.encode()).hexdigest()[:8]
        folder, resumed = claim_folder(f"{experiment.train.task}-{experiment.name}{suffix}-{digest}", root, resumable)
        return cls(folder), resumed

    @classmethod
    def latest(cls, task: Task, root: Path = RUNS_ROOT) -> Run | None:
        """The most recently saved model among the finished runs of `task` under `root`, or None."""
        candidates = []
        for config in root.glob(f"*/{cls.CONFIG}"):
            run = cls(config.parent)
            model = run.file(cls.MODEL)
            if model.is_file() and run.file(cls.METRICS).is_file():
                try:
                    if load_experiment(config).train.task == task.name:
                        candidates.append((model.stat().st_mtime, str(run.folder)))
                except CxrAgeError:
                    continue
        return cls(max(candidates)[1]) if candidates else None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run exclusively while the block runs: never two processes training into one folder."""
        with folder_lock(self.folder):
            yield

    def file(self, name: str) -> Path:
        """The path of one of the run's files."""
        return self.folder / name

    def split_file(self, split: str) -> Path:
        """The table of one split's images (`train`, `val` or `test`)."""
        return self.file(f"{split}.csv")

    def predictions_file(self, split: str) -> Path:
        """The per-image predictions of one split (or `external`)."""
        return self.file(f"predictions_{split}.csv")

    @property
    def experiment(self) -> Experiment:
        """The run's saved settings."""
        return load_experiment(self.file(self.CONFIG))

    @property
    def task(self) -> Task:
        return self.experiment.task

    def split(self, split: str) -> pd.DataFrame:
        """One of the run's split tables as training wrote it (ids and image names kept as text; runs made
        before datasets had names read with `dataset` blank)."""
        frame = pd.read_csv(self.split_file(split), dtype={"patient_id": str, "image": str, "dataset": str},
                            keep_default_na=False)
        return frame if "dataset" in frame else frame.assign(dataset="")

    def split_images(self, split: str) -> pd.DataFrame:
        """A split whose every image file is present (an error naming the first missing one)."""
        if not self.split_file(split).is_file():
            raise CxrAgeError(f"{self} has no {split}.csv")
        frame = self.split(split)
        missing = ~frame["path"].map(os.path.isfile)  # io.image_check's test, without its TensorFlow import
        if missing.any():
            raise CxrAgeError(f"{int(missing.sum())} images of {self.split_file(split)} are missing (first: "
                              f"{frame['path'][missing].iloc[0]})")
        return frame

    def saved_splits(self) -> pd.DataFrame | None:
        """`train.csv`, `val.csv` and `test.csv` stacked with their `split`, or None before any is written; a
        run with only some of them is an error."""
        present = [split for split in SPLITS if self.split_file(split).is_file()]
        if not present:
            return None
        if len(present) < len(SPLITS):
            missing = sorted(set(SPLITS) - set(present))
            raise CxrAgeError(f"{self} is missing its {', '.join(f'{s}.csv' for s in missing)}: the split is "
                              "incomplete")
        return pd.concat([self.split(split).assign(split=split) for split in SPLITS], ignore_index=True)

    def check_splits(self) -> None:
        """No patient in two of the run's splits, and no image listed twice."""
        saved = self.saved_splits()
        if saved is None:
            raise CxrAgeError(f"{self} has no split files (train.csv, val.csv, test.csv)")
        repeated = saved["image"][saved["image"].duplicated()]
        if len(repeated):
            raise CxrAgeError(f"{self}: {len(repeated)} images are listed more than once in the split files "
                              f"(first: {repeated.iloc[0]})")
        try:
            check_disjoint(saved)
        except CxrAgeError as err:
            raise CxrAgeError(f"{self}: {err}") from None

    def check_same_split(self, frame: pd.DataFrame) -> None:
        """A resumed run's saved split must equal the split its data gives now (`frame` with `split`)."""
        saved = self.saved_splits()
        if saved is None:
            return
        both = pd.concat([saved.set_index("image")["split"].rename("saved"),
                          frame.set_index("image")["split"].rename("now")], axis=1)
        changed = both.index[both["saved"].ne(both["now"])]
        if len(changed):
            raise CxrAgeError(f"the data no longer gives the split saved in {self} ({len(changed)} images differ, "
                              f"first: {changed[0]}); resume with the same data, or start a new run")

    def predictions(self, split: str) -> pd.DataFrame | None:
        """A split's saved predictions (text columns kept as text), or None."""
        path = self.predictions_file(split)
        if not path.is_file():
            return None
        return pd.read_csv(path, dtype=TEXT_COLUMNS, keep_default_na=False)

    def metrics(self) -> dict | None:
        """The run's `metrics.json`, or None before it is evaluated."""
        return _json(self.file(self.METRICS))

    def history(self) -> pd.DataFrame | None:
        """The per-epoch log of training, or None."""
        path = self.file(self.HISTORY)
        return pd.read_csv(path) if path.is_file() and path.stat().st_size else None

    def network(self) -> keras.Model:
        """The best model, loaded in Keras safe mode (a file carrying Python code is refused)."""
        import keras

        from cxr_age.nets.losses import YearsMAE, r2_loss  # noqa: F401 - the custom objects of older model files

        model_file = self.file(self.MODEL)
        try:
            return keras.saving.load_model(model_file, safe_mode=True)
        except Exception as err:  # noqa: BLE001 - any failure to deserialise is a bad model file for the user
            if "safe_mode" in str(err):
                raise CxrAgeError(f"refused to load {model_file}: it contains Python code (e.g. a Lambda layer), "
                                  "which could run anything on this machine; models are only loaded in Keras safe "
                                  "mode") from None
            raise CxrAgeError(f"cannot load {model_file}: {str(err).splitlines()[0]}") from None

    def uncertainty(self, task: Task | None = None) -> AgeIntervals | Calibration | None:
        """What the run fitted on its validation split to say how sure it is: the regressor's conformal
        intervals or the classifier's calibration; None before it was evaluated."""
        kind = (task or self.task).uncertainty_type
        path = self.file(self.CONFORMAL if kind is AgeIntervals else self.CALIBRATION)
        return kind.load(path) if path.is_file() else None

    def baseline(self) -> Baseline:
        """The trivial predictions fitted on the training split (median age, majority group)."""
        return Baseline.of(self.split("train"))

    def trained_on(self) -> str:
        """The dataset(s) the run was trained on, from its training split (`csv` for runs made before
        datasets had names, when the table was not NIH's)."""
        return "+".join(sorted(self.split("train")["dataset"].replace("", "csv").unique()))

    def external_runs(self) -> list[tuple[Run, dict]]:
        """Every external validation of the run (its folder, its metrics), oldest first."""
        found = [(Run(path.parent), json.loads(path.read_text()))
                 for path in self.file(self.EXTERNAL).glob(f"*/{self.METRICS}")]
        return sorted(found, key=lambda item: item[1].get("evaluated", ""))

    def newest_saliency(self) -> Path | None:
        """The folder of the newest saliency analysis, or None."""
        folders = [settings.parent for settings in self.file(self.SALIENCY).glob("*/settings.json")]
        return max(folders, key=lambda folder: folder.stat().st_mtime) if folders else None

    def age_gap(self) -> dict | None:
        """The age-gap summary (`age_gap.json`), or None before the analysis."""
        return _json(self.file(self.AGE_GAP))

    def manifest(self) -> dict:
        """The run's manifest: format, version, task and the roles of its files (a run made before
        manifests gets the one its files imply)."""
        return _json(self.file(self.MANIFEST)) or self._manifest()

    def _manifest(self) -> dict:
        from cxr_age import __version__

        experiment = self.experiment
        roles = {"config": self.CONFIG, "model": self.MODEL, "metrics": self.METRICS, "history": self.HISTORY,
                 "conformal": self.CONFORMAL, "calibration": self.CALIBRATION,
                 **{f"split_{split}": self.split_file(split).name for split in SPLITS}}
        return {"kind": "cxr-age run", "format": MANIFEST_FORMAT, "cxr_age": __version__, "task": experiment.train.task,
                "experiment": experiment.name, "demo": experiment.train.demo,
                "files": {role: name for role, name in roles.items() if self.file(name).exists()}}

    def new_folder(self, under: str, kind: str, out: str | os.PathLike | None = None) -> Path:
        """A fresh folder for an analysis of the run (`external`, `saliency`), or `out` if new or empty."""
        return new_folder(out, kind, self.file(under))

    def healthy(self) -> dict | None:
        """A healthy-only run's counts of images kept and removed per split, or None."""
        return _json(self.file(self.HEALTHY))

    def write_healthy(self, counts: dict[str, int]) -> None:
        write_json(counts, self.file(self.HEALTHY))

    def write_config(self, experiment: Experiment) -> None:
        write_text(to_toml(experiment), self.file(self.CONFIG))

    def write_table(self, frame: pd.DataFrame, name: str) -> Path:
        """A table of the run (`Run.SKIPPED`, `Run.REMOVED`)."""
        return write_csv(frame, self.file(name))

    def write_split(self, split: str, frame: pd.DataFrame) -> Path:
        return write_csv(frame, self.split_file(split))

    def write_predictions(self, split: str, frame: pd.DataFrame) -> None:
        write_csv(frame, self.predictions_file(split))

    def save_uncertainty(self, fitted: AgeIntervals | Calibration) -> None:
        fitted.save(self.file(self.CONFORMAL if isinstance(fitted, AgeIntervals) else self.CALIBRATION))

    def write_metrics(self, result: dict[str, Any]) -> None:
        """`metrics.json`, the mark of an evaluated run, and the manifest beside it."""
        write_json(result, self.file(self.METRICS))
        if self.file(self.CONFIG).is_file():  # an external validation's folder holds metrics but no settings
            write_json({**self._manifest(), "written": time.strftime("%Y-%m-%d %H:%M:%S")},
                       self.file(self.MANIFEST))


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None
