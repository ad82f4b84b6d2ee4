"""The two ways a trained network computes. `keras`: the network in Keras with the training stack's
`tf.data` decoding (TensorFlow), and the only one that makes saliency maps. `onnx`: the bundle's
`model.onnx` in ONNX Runtime with the same decoding in NumPy and OpenCV (`cxr_age.io.plain_images`), in a
process that never imports TensorFlow. Each turns files and arrays into the network's input and runs it."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxr_age.bundle.bundle import ONNX
from cxr_age.errors import CxrAgeError
from cxr_age.io.batches import ReadBatch
from cxr_age.run import Run

ENGINES = ("keras", "onnx")


class _Engine:
    """What both engines do alike: read files and arrays with their decoder module (`read_batches`,
    `image_from_array`), imported on first use so that the ONNX engine never imports TensorFlow."""

    name: str
    decoder: str

    def read_batches(self, files: Sequence[Path], image_size: int, batch_size: int, any_dicom: bool = False,
                     threads: int | None = None) -> Iterator[ReadBatch]:
        return importlib.import_module(self.decoder).read_batches(files, image_size, batch_size, any_dicom, threads)

    def from_array(self, array: np.ndarray, image_size: int) -> np.ndarray:
        return importlib.import_module(self.decoder).image_from_array(array, image_size)


class KerasEngine(_Engine):
    """A Keras network, fed by the training pipeline's decoder."""

    name = "keras"
    decoder = "cxr_age.io.reader"

    def __init__(self, network: Any) -> None:
        self.network = network

    def outputs(self, inputs: np.ndarray, compiled: bool = False) -> np.ndarray:
        """Eagerly (no graph trace for a handful), or `compiled` as a traced graph (four times the throughput
        of eager calls for a DenseNet on a CPU, once the trace is paid)."""
        if compiled:
            return np.asarray(self.network.predict_on_batch(inputs))
        return np.asarray(self.network(inputs, training=False))


class OnnxEngine(_Engine):
    """An ONNX Runtime session of the exported network, fed by the NumPy and OpenCV decoder."""

    name = "onnx"
    decoder = "cxr_age.io.plain_images"

    def __init__(self, session: Any) -> None:
        self.network = session
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def load(cls, path: Path) -> OnnxEngine:
        try:
            import onnxruntime
        except ImportError:
            raise CxrAgeError("the onnx engine needs ONNX Runtime: pip install \"cxr-age[onnx]\"") from None
        available = onnxruntime.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        return cls(onnxruntime.InferenceSession(str(path), providers=providers))

    def outputs(self, inputs: np.ndarray, compiled: bool = False) -> np.ndarray:
        return np.asarray(self.network.run(None, {self.input_name: np.asarray(inputs, np.float32)})[0])


def load_engine(run: Run, engine: str = "keras") -> KerasEngine | OnnxEngine:
    """The network of a run or bundle in `engine`."""
    if engine == "keras":
        return KerasEngine(run.network())
    if engine == "onnx":
        path = run.file(ONNX)
        if not path.is_file():
            raise CxrAgeError(f"{run} holds no {ONNX}: export the run as a bundle with its ONNX network "
                              "(cxr-age-export's ONNX option, or export_bundle(run, out, onnx=True))")
        return OnnxEngine.load(path)
    raise CxrAgeError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
