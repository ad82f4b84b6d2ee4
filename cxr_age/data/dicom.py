"""Read a single-frame DICOM radiograph into the gray [0, 1] image the PNG path gives, following the DICOM
grayscale pipeline (PS3.3 C.11): stored values, then the modality LUT or rescale slope and intercept, then
the VOI LUT or the first window (LINEAR, LINEAR_EXACT or SIGMOID, C.11.2.1.2), then MONOCHROME1 inverted so
that bone is bright. Without a VOI LUT or window the image's own value range is stretched to [0, 1].

Only pixel data and the tags of that pipeline are read: no patient identifier leaves this module. pydicom is
an optional dependency (`pip install "cxr-age[dicom]"`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxr_age.errors import CxrAgeError

DICOM_SUFFIXES = (".dcm", ".dicom")
_PREAMBLE = 128
_MAGIC = b"DICM"
_LUMA = np.array([0.299, 0.587, 0.114])


def is_dicom(path: Path) -> bool:
    """A `.dcm`/`.dicom` name, or the `DICM` marker after the 128-byte preamble (files without a suffix)."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(_PREAMBLE)
            return handle.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """The VOI window of PS3.3 C.11.2.1.2, mapped to [0, 1] instead of the output bit range."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    return np.clip((values - (center - 0.5)) / max(width - 1.0, 1e-6) + 0.5, 0.0, 1.0)


def _first(value: object) -> float:
    """The first value of a possibly multi-valued DS tag (several windows: the first is the default)."""
    return float(np.ravel(np.asarray(value, dtype=np.float64))[0])


def _voi(values: np.ndarray, dataset, pixels) -> np.ndarray:
    """Modality-LUT output values to [0, 1] through the VOI LUT (indexed by the values as they are, integers
    unless a rescale made them fractional), the first window, or the value range."""
    if "VOILUTSequence" in dataset:
        bits = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
        return pixels.apply_voi(values, dataset).astype(np.float64) / (2 ** bits - 1)
    values = values.astype(np.float64)
    if "WindowCenter" in dataset and "WindowWidth" in dataset:
        function = str(dataset.get("VOILUTFunction", "LINEAR")).upper()
        width = _first(dataset.WindowWidth)
        if width <= 0:
            raise ValueError(f"window width {width} is not positive")
        return _window(values, _first(dataset.WindowCenter), width, function)
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def read_dicom(path: Path) -> np.ndarray:
    """One DICOM file's image as float32 `[height, width]` in [0, 1], bright bone (see the module notes)."""
    try:
        import pydicom
        import pydicom.pixels as pixels
    except ImportError:
        raise CxrAgeError(f"{path}: a DICOM file; reading DICOM needs pydicom: "
                          "pip install \"cxr-age[dicom]\"") from None
    try:
        dataset = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise CxrAgeError(f"{path}: cannot be read as DICOM: {str(err).splitlines()[0]}") from None
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise CxrAgeError(f"{path}: holds {frames} frames; only single-frame radiographs are read: export the "
                          "frame to use as its own file")
    photometric = str(dataset.get("PhotometricInterpretation", "")).upper()
    try:
        stored = dataset.pixel_array
        if photometric in ("MONOCHROME1", "MONOCHROME2"):
            gray = _voi(pixels.apply_modality_lut(stored, dataset), dataset, pixels)
            if photometric == "MONOCHROME1":
                gray = 1.0 - gray
        elif stored.ndim == 3 and stored.shape[-1] == 3:
            gray = stored.astype(np.float64) @ _LUMA / (2 ** int(dataset.BitsStored) - 1)
        else:
            raise ValueError(f"photometric interpretation {photometric or 'missing'} is not a grayscale or RGB image")
    except (AttributeError, KeyError, ValueError, RuntimeError, NotImplementedError) as err:
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        detail = f" (transfer syntax {syntax.name})" if syntax is not None else ""
        raise CxrAgeError(f"{path}: cannot decode the DICOM pixel data{detail}: {str(err).splitlines()[0]}") from None
    if gray.ndim != 2:
        raise CxrAgeError(f"{path}: expected one 2-D image, found pixel data of shape {gray.shape}")
    return gray.astype(np.float32)
