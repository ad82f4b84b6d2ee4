"""Export a finished run as a bundle a colleague can use: the inference network (Keras format, and ONNX on
request), the preprocessing specification, the fitted intervals or calibration, the metrics of the internal
test split and of every external validation, a model card, and a manifest with the SHA-256 of every file.
No patient-level file goes in: no split table, image name or patient id."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

from cxr_age import __version__
from cxr_age.bundle.bundle import CARD_JSON, CARD_MARKDOWN, ONNX, PREPROCESSING
from cxr_age.bundle.card import card_facts, render_markdown
from cxr_age.bundle.manifest import write_manifest
from cxr_age.config import to_toml
from cxr_age.errors import CxrAgeError
from cxr_age.io.files import CLAIM, new_folder, sha256_of, write_json, write_text
from cxr_age.run import RUNS_ROOT, Run

LOCAL_SETTINGS = ("csv", "image_dir", "patients", "nih_lists")  # paths on the machine that trained the model


def preprocessing_spec(run: Run) -> dict:
    """How an image becomes the network's input, as `cxr_age.io.decode` does it."""
    experiment = run.experiment
    size = experiment.data.image_size
    return {
        "input": {"name": "image", "shape": [None, size, size, 1], "dtype": "float32", "range": [0.0, 1.0]},
        "decoder": "PNG, JPEG or BMP decoded to one grey channel (colour by luma weights, alpha dropped); DICOM "
                   "through its modality rescale and VOI LUT or first window, MONOCHROME1 inverted",
        "scale": "pixel value / the type's maximum (255 or 65535); DICOM values over their window",
        "resize": f"to {size} x {size}: block averages when both sides are whole multiples of {size}, else "
                  "anti-aliased bilinear (triangle filter, half-pixel centres); clipped to [0, 1]",
        "age_scale": experiment.train.age_scale,
        "output": ({"name": experiment.task.head.layer, "meaning": f"age / {experiment.train.age_scale:g}"}
                   if experiment.task.predicts_age else
                   {"name": experiment.task.head.layer, "meaning": "probability of each of the nine age groups"}),
        "implementations": ["cxr_age.io.decode (TensorFlow)", "cxr_age.io.plain_images (NumPy and OpenCV)"],
    }


def _bundle_metrics(run: Run, metrics: dict) -> tuple[dict, list[dict]]:
    """The bundle's metrics (the internal test split and its uncertainty) and the external validations."""
    external = [{"tested_on": result["tested_on"], **result["splits"]["external"],
                 "uncertainty": result.get("uncertainty")} for _, result in run.external_runs()]
    kept = {"experiment": metrics["experiment"], "task": metrics["task"], "demo": metrics["demo"],
            "splits": {"test": metrics["splits"]["test"]}, "uncertainty": metrics.get("uncertainty"),
            "external": external, "training_baseline": vars(run.baseline())}
    return kept, external


def _write_onnx(run: Run, path: Path) -> None:
    """The network as ONNX, through Keras 3's own exporter (tf2onnx on the TensorFlow backend)."""
    import numpy as np

    network = run.network()
    size = run.experiment.data.image_size
    network(np.zeros((1, size, size, 1), np.float32))  # Keras exports only a model that has been called
    try:
        network.export(str(path), format="onnx", verbose=False)
    except ImportError as err:
        raise CxrAgeError(f"an ONNX export needs the onnx extra (pip install \"cxr-age[onnx]\"): {err}") from None


def export_bundle(run: Run | str | os.PathLike, out: str | os.PathLike | None = None, onnx: bool = False) -> Path:
    """Write a run's bundle into `out` (new or empty; default a fresh `runs/bundle-<time>/`) and return it.

    Args:
        run: a finished, evaluated run.
        out: the bundle's folder.
        onnx: also write `model.onnx` (needs the onnx extra), for the ONNX engine that runs without TensorFlow.

    Examples:
        >>> folder = export_bundle("runs/regress-nih", "bundles/regress-nih", onnx=True)
        >>> cxr_age.AgeModel.load(folder, engine="onnx").predict("study.dcm")
    """
    run = Run.open(run)
    metrics = run.metrics()
    if metrics is None or "test" not in metrics["splits"]:
        raise CxrAgeError(f"{run} has no test metrics: evaluate it first (cxr-age-evaluate {run})")
    folder = new_folder(out, "bundle", RUNS_ROOT)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as scratch:
        staging = Path(scratch)
        experiment = run.experiment
        data = replace(experiment.data, **dict.fromkeys(LOCAL_SETTINGS))
        write_text(to_toml(replace(experiment, data=data)), staging / Run.CONFIG)
        shutil.copyfile(run.file(Run.MODEL), staging / Run.MODEL)
        fitted = run.uncertainty()
        if fitted is not None:
            Run(staging).save_uncertainty(fitted)
        bundle_metrics, external = _bundle_metrics(run, metrics)
        write_json(bundle_metrics, staging / Run.METRICS)
        write_json(preprocessing_spec(run), staging / PREPROCESSING)
        card = card_facts(run, metrics, external)
        write_json(card, staging / CARD_JSON)
        write_text(render_markdown(card), staging / CARD_MARKDOWN)
        if onnx:
            _write_onnx(run, staging / ONNX)
        write_manifest(staging, {"cxr_age": __version__, "task": experiment.train.task,
                                 "image_size": experiment.data.image_size, "demo": experiment.train.demo})
        for path in staging.iterdir():
            os.replace(path, folder / path.name)
    (folder / CLAIM).unlink(missing_ok=True)  # a bundle holds only what its manifest lists
    return folder


def archive_bundle(folder: Path) -> tuple[Path, str]:
    """`<folder>.zip` beside the bundle (written under a temporary name) and its SHA-256, to publish."""
    target = folder.with_suffix(".zip")
    if target.exists():
        raise CxrAgeError(f"{target} already exists (nothing is overwritten)")
    temporary = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    os.replace(temporary, target)
    return target, sha256_of(target)
