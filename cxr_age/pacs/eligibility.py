"""Which DICOM instances get an age, from their header alone (the pull reads the WADO-RS metadata before any
pixels; the listener reads what it received): a CR image or a DX image For Presentation (never For Processing,
whose pixels are not meant to be looked at), of the chest or of no stated body part, a PA or AP view, an
ORIGINAL image (not derived), one frame of at most MAX_PIXELS, and not a structured report or a secondary
capture. Each refusal is one short reason that names the field and never a patient attribute, so that
reasons can be counted and logged."""

from __future__ import annotations

from cxr_age.io.declared_size import MAX_PIXELS
from cxr_age.io.dicom import CHEST_BODY_PARTS

CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"
ACCEPTED_SOP_CLASSES = (CR_IMAGE, DX_FOR_PRESENTATION)
STRUCTURED_REPORTS = "1.2.840.10008.5.1.4.1.1.88."
SECONDARY_CAPTURES = "1.2.840.10008.5.1.4.1.1.7"
FRONTAL_VIEWS = ("PA", "AP")


def _text(dataset, keyword: str) -> str:
    value = dataset.get(keyword, "")
    return str(value if value is not None else "").strip().upper()


def _first_value(value: object) -> str:
    """The first value of a possibly multi-valued attribute (ImageType's first is ORIGINAL or DERIVED)."""
    if value is None or isinstance(value, str):
        return str(value or "").split("\\")[0].strip().upper()
    values = list(value)
    return str(values[0]).strip().upper() if values else ""


def _sop_class_reason(sop_class: str, modality: str) -> str | None:
    if sop_class in ACCEPTED_SOP_CLASSES:
        return None
    if sop_class == DX_FOR_PROCESSING:
        return "DX For Processing (only For Presentation images are read)"
    if sop_class.startswith(STRUCTURED_REPORTS):
        return "a structured report"
    if sop_class.startswith(SECONDARY_CAPTURES):
        return "a secondary capture"
    return f"{modality or 'unknown'} modality (SOP class {sop_class or 'missing'}), not CR or DX For Presentation"


def ineligible(dataset) -> str | None:
    """Why this instance gets no age, or None if it is a frontal chest radiograph to read (see the module
    notes). `dataset` is a pydicom Dataset, header only or whole."""
    sop_class = str(dataset.get("SOPClassUID", "") or "")
    reason = _sop_class_reason(sop_class, _text(dataset, "Modality"))
    if reason:
        return reason
    body_part = _text(dataset, "BodyPartExamined")
    if body_part and not any(part in body_part for part in CHEST_BODY_PARTS):
        return f"BodyPartExamined {body_part}, not the chest"
    view = _text(dataset, "ViewPosition")
    if view not in FRONTAL_VIEWS:
        return f"ViewPosition {view}, not PA or AP" if view else "no ViewPosition (PA or AP is needed)"
    pixel_data = _first_value(dataset.get("ImageType"))
    if pixel_data and pixel_data != "ORIGINAL":
        return f"a {pixel_data.lower()} image (ImageType), not ORIGINAL"
    frames = _text(dataset, "NumberOfFrames") or "1"
    if frames != "1":
        return f"{frames} frames (one is needed)"
    return _oversized(dataset)


def _oversized(dataset) -> str | None:
    try:
        pixels = int(dataset.get("Rows", 0) or 0) * int(dataset.get("Columns", 0) or 0)
    except (TypeError, ValueError):
        return "Rows or Columns is not a number"
    return f"oversized: {pixels:,} pixels, over {MAX_PIXELS:,}" if pixels > MAX_PIXELS else None
