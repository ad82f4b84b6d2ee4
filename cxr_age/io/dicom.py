"""Read a single-frame DICOM radiograph into the gray [0, 1] image the PNG path gives, following the DICOM
grayscale pipeline (PS3.3 C.11): stored values, then the modality LUT or rescale slope and intercept, then
the VOI LUT or the first window (LINEAR, LINEAR_EXACT or SIGMOID, C.11.2.1.2), then MONOCHROME1 inverted so
that bone is bright. Without a VOI LUT or window the image's own value range is stretched to [0, 1].

Only frontal chest radiographs get an age: a file whose `Modality` is not CR or DX, whose `BodyPartExamined`
is not the chest or whose `ViewPosition` is lateral is refused with the field named, unless the caller reads
any DICOM (`any_dicom`). Files without the 128-byte preamble or the file meta header are read too. Compressed
pixel data is decoded by the plugins of the `dicom` extra (GDCM: JPEG baseline and lossless, JPEG-LS,
JPEG 2000, RLE); 12-bit JPEG Extended needs pylibjpeg-libjpeg, which is GPL-3.0 and so left to the user.

Only pixel data and the tags of that pipeline, the chest check and the age are read: no patient identifier
leaves this module (`header_age` gives years, never the dates). pydicom is an optional dependency
(`pip install "cxr-age[dicom]"`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.ages import parse_age, years_between

DICOM_SUFFIXES = (".dcm", ".dicom")
RADIOGRAPHY = ("CR", "DX")  # computed and digital radiography
CHEST_BODY_PARTS = ("CHEST", "THORAX")  # also matches "PORTABLE CHEST", "NON GRID CHEST" (Open-i)
LATERAL_VIEWS = ("L", "LL", "RL", "LAT", "LATERAL", "LLD", "RLD")
AGE_DATES = ("StudyDate", "AcquisitionDate", "ContentDate", "SeriesDate")
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


def not_a_chest_radiograph(dataset) -> str | None:
    """Why a file is not a frontal chest radiograph, naming the header field; None if nothing says so (a field
    that is absent or blank is taken on trust)."""
    modality = str(dataset.get("Modality", "") or "").strip().upper()
    if modality and modality not in RADIOGRAPHY:
        return f"{modality} image (Modality); cxr-age reads frontal chest radiographs (CR/DX)"
    body_part = str(dataset.get("BodyPartExamined", "") or "").strip().upper()
    if body_part and not any(part in body_part for part in CHEST_BODY_PARTS):
        return f"BodyPartExamined {body_part}; cxr-age reads frontal chest radiographs (CR/DX)"
    view = str(dataset.get("ViewPosition", "") or "").strip().upper()
    if view in LATERAL_VIEWS:
        return f"lateral view (ViewPosition {view}); cxr-age reads frontal chest radiographs (CR/DX)"
    return None


def header_age(dataset) -> float | None:
    """The age the header records, in years: `PatientAge` (`058Y`, `011M`, `003W`, `010D`), else the exact years
    from `PatientBirthDate` to the study's date; None when neither is there or parses."""
    recorded = parse_age(str(dataset.get("PatientAge", "") or ""))
    if recorded is not None:
        return recorded
    birth = str(dataset.get("PatientBirthDate", "") or "")
    study = next((str(dataset.get(tag)) for tag in AGE_DATES if dataset.get(tag)), "")
    years = years_between(pd.Series([birth]), pd.Series([study]))[0]
    return None if np.isnan(years) else float(years)


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise CxrAgeError("reading DICOM needs pydicom: pip install \"cxr-age[dicom]\"") from None
    return pydicom


def read_header(path: Path):
    """A DICOM file's header without its pixel data (files without preamble or meta header included)."""
    pydicom = _pydicom()
    try:
        with warnings.catch_warnings():  # a header's oddities are not the user's to read, file after file
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as err:  # noqa: BLE001 - pydicom raises many types on malformed files; each is one skip
        raise CxrAgeError(f"{path}: cannot be read as DICOM: {_first_line(err)}") from None


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _with_transfer_syntax(dataset) -> None:
    """A file without a meta header (no preamble, or `no_meta.dcm`) gets the transfer syntax it was read in."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if getattr(dataset, "file_meta", None) is None:
        dataset.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in dataset.file_meta:
        implicit, little = dataset.original_encoding
        dataset.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                               ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _decode_failure(dataset, err: Exception) -> str:
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    name = getattr(syntax, "name", None)
    if name and "JPEG Extended" in name and int(dataset.get("BitsStored", 8) or 8) > 8:
        return (f"12-bit {name}: decoding it needs pylibjpeg-libjpeg, which is GPL-3.0 and not installed by "
                "cxr-age (pip install pylibjpeg pylibjpeg-libjpeg if its licence suits you)")
    detail = f" (transfer syntax {name})" if name else ""
    return f"cannot decode the DICOM pixel data{detail}: {_first_line(err)}"


class _NotOneFrame(ValueError):
    """The header does not describe one frame."""


def _gray(dataset) -> np.ndarray:
    import pydicom.pixels as pixels

    frames = str(dataset.get("NumberOfFrames", 1) or 1).strip()
    if not frames.isdigit():
        raise _NotOneFrame(f"NumberOfFrames {frames!r} is not a number")
    if int(frames) > 1:
        raise _NotOneFrame(f"holds {frames} frames; only single-frame radiographs are read: export the frame to use "
                           "as its own file")
    photometric = str(dataset.get("PhotometricInterpretation", "")).upper()
    stored = dataset.pixel_array
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        gray = _voi(pixels.apply_modality_lut(stored, dataset), dataset, pixels)
        return 1.0 - gray if photometric == "MONOCHROME1" else gray
    if stored.ndim == 3 and stored.shape[-1] == 3:
        return stored.astype(np.float64) @ _LUMA / (2 ** int(dataset.BitsStored) - 1)
    raise ValueError(f"photometric interpretation {photometric or 'missing'} is not a grayscale or RGB image")


def read_dicom(path: Path, any_dicom: bool = False) -> np.ndarray:
    """One DICOM file's image as float32 `[height, width]` in [0, 1], bright bone (see the module notes).
    Anything that stops it, of whatever kind, is a CxrAgeError naming the file and the reason."""
    with warnings.catch_warnings():  # pydicom warns of every oddity it reads past: noise in a folder run
        warnings.simplefilter("ignore")
        return _read_pixels(path, any_dicom)


def _read_pixels(path: Path, any_dicom: bool) -> np.ndarray:
    pydicom = _pydicom()
    try:
        dataset = pydicom.dcmread(path, force=True)
    except Exception as err:  # noqa: BLE001 - pydicom raises many types on malformed files; each is one skip
        raise CxrAgeError(f"{path}: cannot be read as DICOM: {_first_line(err)}") from None
    return _dataset_pixels(dataset, str(path), any_dicom)


def dataset_image(dataset, name: str, any_dicom: bool = False) -> np.ndarray:
    """`read_dicom` for a dataset already in memory (one received over the network): float32 `[height, width]`
    in [0, 1]; a CxrAgeError that starts with `name` (a UID, never a patient attribute) says why not."""
    _pydicom()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _dataset_pixels(dataset, name, any_dicom)


def _dataset_pixels(dataset, name: str, any_dicom: bool) -> np.ndarray:
    refusal = None if any_dicom else not_a_chest_radiograph(dataset)
    if refusal:
        raise CxrAgeError(f"{name}: {refusal}; `any_dicom` reads it anyway")
    if "PixelData" not in dataset and "FloatPixelData" not in dataset:
        raise CxrAgeError(f"{name}: cannot be read as DICOM: no pixel data (a {dataset.get('Modality', 'non-image')} "
                          "object)")
    try:
        _with_transfer_syntax(dataset)
        gray = _gray(dataset)
    except Exception as err:  # noqa: BLE001 - any decoder failure is this file's skip, never the run's end
        reason = str(err) if isinstance(err, _NotOneFrame) else _decode_failure(dataset, err)
        raise CxrAgeError(f"{name}: {reason}") from None
    if gray.ndim != 2:
        raise CxrAgeError(f"{name}: expected one 2-D image, found pixel data of shape {gray.shape}")
    return gray.astype(np.float32)
