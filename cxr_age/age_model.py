"""A trained model as one object, from a run folder, an exported bundle or a bundle's URL: its settings, test
metrics and network. It owns its preprocessing (as keras-hub's Task objects do): files and arrays become
exactly what training fed the network, and its outputs come back as ages in years or age-group
probabilities. It computes in Keras or, from a bundle with its ONNX network, in ONNX Runtime without
TensorFlow (`cxr_age.engines`). Saliency maps come from tf-keras-vis, the successor of the keras-vis the
paper used (Karargyris et al., SPIE 2019)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxr_age.bundle.bundle import open_model
from cxr_age.config import Experiment
from cxr_age.engines import KerasEngine, OnnxEngine, load_engine
from cxr_age.errors import CxrAgeError
from cxr_age.io import test_time
from cxr_age.io.batches import ReadBatch
from cxr_age.run import Run
from cxr_age.runtime import require_tensorflow
from cxr_age.tasks import Task

Images = str | Path | np.ndarray | Sequence[str | Path | np.ndarray]


def _items(images: Images) -> list[str | Path | np.ndarray]:
    """One image or many as a list: a path, a list of paths or arrays, a 2-D or `[h, w, 1|3|4]` array (one
    image), a `[n, h, w]` stack of gray images or a `[n, h, w, c]` batch."""
    if isinstance(images, (str, Path)):
        return [images]
    if isinstance(images, np.ndarray):
        one = images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3, 4))
        return [images] if one else list(images)
    return list(images)


class AgeModel:
    """A trained age regressor or age-group classifier, from its run folder or bundle.

    Examples:
        >>> model = cxr_age.AgeModel.load("runs/regress-demo-1a2b3c4d")
        >>> model.task.name, model.image_size
        ('regress', 128)
        >>> model.predict("data/sample/images/00000075_000.png")["predicted_age"]
        >>> maps = model.saliency(["a.png", "b.png"], method="gradcam")
        >>> shared = cxr_age.AgeModel.load("https://example.org/regress.zip", sha256="9f2c...", engine="onnx")
    """

    def __init__(self, run: Run | str | os.PathLike, experiment: Experiment,
                 network: Any | KerasEngine | OnnxEngine) -> None:
        self.run = Run.of(run)
        self.experiment = experiment
        self.engine = network if isinstance(network, (KerasEngine, OnnxEngine)) else KerasEngine(network)
        self._visualisers: dict[str, object] = {}
        self.uncertainty = self.run.uncertainty(self.task)

    @classmethod
    def load(cls, source: Run | str | os.PathLike, sha256: str | None = None, engine: str = "keras") -> AgeModel:
        """The model of a finished run, of an exported bundle, or of a bundle's URL (downloaded once into
        the cache and checked; `cxr_age.bundle.fetch`), loaded in Keras safe mode (a model file carrying
        Python code is refused) or in ONNX Runtime.

        Args:
            source: a run folder, a bundle folder, or an `https://`, `http://` or `file://` URL of a zipped
                or tarred bundle.
            sha256: the expected SHA-256 of the URL's archive, or of a bundle folder's `manifest.json`.
            engine: `keras`, or `onnx` (a bundle exported with its ONNX network; no TensorFlow).
        """
        run = open_model(source, sha256)
        return cls(run, run.experiment, load_engine(run, engine))

    @property
    def network(self) -> Any:
        """The Keras model, or the ONNX Runtime session of the `onnx` engine."""
        return self.engine.network

    @property
    def task(self) -> Task:
        """The task (`REGRESS` or `CLASSIFY` of `cxr_age.tasks`; `str(model.task)` is its name)."""
        return self.experiment.task

    @property
    def image_size(self) -> int:
        """The square input size in pixels that every image is resized to."""
        return self.experiment.data.image_size

    @property
    def demo(self) -> bool:
        """True for a demonstration run on the embedded sample: its predictions are not usable estimates."""
        return self.experiment.train.demo

    @property
    def metrics(self) -> dict:
        """The run's `metrics.json` (per split: each metric with its 95% interval, and the baseline)."""
        return self.run.metrics() or {}

    def summary(self) -> dict:
        """What a reader needs to weigh the predictions: the run or bundle, its task, training data and
        network, whether it is a demonstration, and its test metric with its 95% interval beside the
        baseline's (from the run's metrics)."""
        summary = {"run": str(self.run), "task": self.task.name, "trained_on": self.run.trained_on(),
                   "backbone": self.experiment.train.backbone, "image_size": self.image_size, "demo": self.demo}
        test = self.metrics.get("splits", {}).get("test")
        if test:
            key = self.task.headline_metric
            summary[f"test_{key}"] = {**test["model"][key], "baseline": test["baseline"][key]}
        return summary

    def preprocess(self, images: Images) -> np.ndarray:
        """Files (PNG, JPEG, BMP, GIF, DICOM) or arrays (uint8, uint16, or float in [0, 1]; any size) as the
        network's float32 input `[n, size, size, 1]`, through the training decoder and resize (files in
        parallel, `cxr_age.io.reader`). A file that cannot be read is a CxrAgeError naming it."""
        items = _items(images)
        if not items:
            raise CxrAgeError("no images given")
        inputs: list[np.ndarray | None] = [None if isinstance(item, (str, Path)) else
                                           self.engine.from_array(item, self.image_size) for item in items]
        positions = [i for i, item in enumerate(inputs) if item is None]
        files = [Path(items[i]) for i in positions]
        for indices, images in self._read(files, max(len(files), 1)):
            for index, image in zip(indices, images):
                inputs[positions[index]] = image
        return np.stack(inputs)

    def read_batches(self, files: Sequence[Path], batch_size: int, any_dicom: bool = False,
                     threads: int | None = None) -> Iterator[ReadBatch]:
        """Files as the network's input, in batches read in parallel a batch ahead by the engine's decoder;
        each batch names the files it could not read."""
        return self.engine.read_batches(files, self.image_size, batch_size, any_dicom, threads)

    def _read(self, files: list[Path], batch_size: int) -> Iterator[tuple[list[int], np.ndarray]]:
        """Batches of files read through one parallel pipeline; the first unreadable file is an error."""
        for read in self.read_batches(files, batch_size):
            if read.skipped:
                index, reason = read.skipped[0]
                raise CxrAgeError(f"{files[index]}: {reason}")
            yield read.indices, read.images

    def _input_batches(self, items: list[str | Path | np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
        """Preprocessed batches of `items` in order: a list of files through one pipeline, a batch ahead."""
        if all(isinstance(item, (str, Path)) for item in items):
            yield from (images for _, images in self._read([Path(item) for item in items], batch_size))
        else:
            yield from (self.preprocess(items[start:start + batch_size]) for start in range(0, len(items), batch_size))

    def outputs(self, inputs: np.ndarray, compiled: bool = False) -> np.ndarray:
        """The network's outputs for a preprocessed batch (Keras: eagerly, or `compiled` as a traced graph)."""
        return self.engine.outputs(inputs, compiled)

    def columns(self, outputs: np.ndarray, coverage: float | None = None) -> pd.DataFrame:
        """The network's outputs as predictions, with how sure the model is where the run was calibrated."""
        frame = pd.DataFrame(self.task.prediction_columns(outputs, self.experiment.train.age_scale))
        return self.task.uncertainty_columns(frame, self.uncertainty, coverage)

    def spread(self, inputs: np.ndarray, views: int, compiled: bool = False) -> pd.DataFrame:
        """Test-time spread of a preprocessed batch (`cxr_age.io.test_time`): `tta_mean_age` and `tta_sd`,
        the mean and SD of the predicted age over `views` zoomed and shifted views, the first being the image
        itself. A quality-control flag, not a confidence interval (the conformal interval is that)."""
        if not self.task.predicts_age:
            raise CxrAgeError("test-time spread is defined on the regressor's age: use a regress run or bundle")
        ages = np.stack([self.task.prediction_columns(self.outputs(view, compiled), self.experiment.train.age_scale)
                         ["predicted_age"] for view in test_time.views(inputs, views)])
        return pd.DataFrame({"tta_mean_age": ages.mean(axis=0), "tta_sd": ages.std(axis=0, ddof=1),
                             "tta_views": views})

    def predict(self, images: Images, batch_size: int = 32, coverage: float | None = None,
                tta: int | None = None) -> pd.DataFrame:
        """One row per image: `predicted_age` in years with its conformal interval `interval_low` ..
        `interval_high` (regressor), or the nine `p_<group>` probabilities, `predicted_group`, the
        calibrated `expected_age` and the conformal `prediction_set` (classifier). The `image` column names
        the file, or `array <i>`.

        Args:
            images: a path, an array, or a list of them (see `preprocess`).
            batch_size: images per forward pass.
            coverage: the intervals' or sets' coverage (default: the run's, 90%).
            tta: regressor only: also `tta_mean_age` and `tta_sd` over this many views (2 to 8; see `spread`).
        """
        items = _items(images)
        if not items:
            raise CxrAgeError("no images given")
        if tta is not None:
            test_time.check_views(tta)
        compiled = len(items) > batch_size
        batches, spreads = [], []
        for inputs in self._input_batches(items, batch_size):
            batches.append(self.outputs(inputs, compiled))
            if tta is not None:
                spreads.append(self.spread(inputs, tta, compiled))
        names = [str(item) if isinstance(item, (str, Path)) else f"array {i}" for i, item in enumerate(items)]
        frame = self.columns(np.concatenate(batches), coverage)
        frame.insert(0, "image", names)
        if spreads:
            frame = pd.concat([frame, pd.concat(spreads, ignore_index=True)], axis=1)
        return frame

    def saliency(self, images: Images, method: str = "saliency", group: int | str | None = None) -> np.ndarray:
        """Per-image saliency maps `[n, size, size]` in [0, 1] (tf-keras-vis; `method` one of saliency,
        smoothgrad, gradcam, gradcam++, scorecam, layercam).

        Args:
            images: a path, an array, or a list of them (see `preprocess`).
            method: the tf-keras-vis method; `saliency` (vanilla gradients) is the paper's.
            group: classifier only: the age group whose score is explained (`"70-80"` or its index); by
                default each image's predicted group. A regressor's maps explain its age output.
        """
        if not isinstance(self.engine, KerasEngine):
            raise CxrAgeError("saliency maps need the keras engine (tf-keras-vis differentiates the Keras network)")
        require_tensorflow("saliency maps (tf-keras-vis)")
        from cxr_age.saliency.methods import MapSettings, SaliencyMaps

        inputs = self.preprocess(images)
        if method not in self._visualisers:
            self._visualisers[method] = SaliencyMaps(self.network, self.task, MapSettings(method))
        groups = self.task.saliency_groups(group, len(inputs), lambda: self.outputs(inputs))
        return self._visualisers[method](inputs, groups)
