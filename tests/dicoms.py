"""DICOM files made with pydicom for the tests: a digital X-ray with patient identifiers in its header,
MONOCHROME1 or MONOCHROME2, with rescale, a window or a VOI LUT, or several frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "SECRET-ID-4711"


def write_dicom(path: Path, stored: np.ndarray, photometric: str = "MONOCHROME2", bits: int = 12,
                window: tuple[float, float] | None = None, rescale: tuple[float, float] | None = None,
                voi_lut: np.ndarray | None = None, **tags: str) -> Path:
    """`stored` (uint16, `[rows, cols]` or `[frames, rows, cols]`) as a DX file with identifying tags, and any
    other header fields given by keyword (`PatientAge="058Y"`, `ViewPosition="LL"`, ...)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.PatientName = PATIENT_NAME
    dataset.PatientID = PATIENT_ID
    dataset.PatientBirthDate = "19500101"
    dataset.Modality = "DX"
    dataset.Rows, dataset.Columns = stored.shape[-2:]
    if stored.ndim == 3:
        dataset.NumberOfFrames = stored.shape[0]
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, bits, bits - 1
    dataset.PixelRepresentation = 0
    if rescale is not None:
        dataset.RescaleSlope, dataset.RescaleIntercept = rescale
    if window is not None:
        dataset.WindowCenter, dataset.WindowWidth = window
    if voi_lut is not None:
        item = Dataset()
        item.LUTDescriptor = [len(voi_lut), 0, 16]
        item.LUTData = voi_lut.astype(np.uint16).tobytes()
        dataset.VOILUTSequence = [item]
    for keyword, value in tags.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = stored.astype(np.uint16).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


def chest_instance(path: Path, image: np.ndarray, study: str, series: str, **tags: str) -> Path:
    """A frontal (PA) chest DX For Presentation, ORIGINAL, of `image` (float in [0, 1]) as 12-bit pixels, in
    `study` and `series`; keyword tags override the defaults (`ViewPosition="LL"`, `Modality="CR"`, ...)."""
    defaults = {"StudyInstanceUID": study, "SeriesInstanceUID": series, "ViewPosition": "PA",
                "BodyPartExamined": "CHEST", "ImageType": ["ORIGINAL", "PRIMARY"], "StudyDate": "20240105",
                "PatientAge": "058Y", "PatientSex": "F"}
    return write_dicom(path, np.round(image * 4095).astype(np.uint16), bits=12, **{**defaults, **tags})
