"""The estimated age as a DICOM Structured Report that a PACS stores beside the radiograph and a viewer shows:
a Comprehensive 3D SR holding a TID 1500 measurement report (highdicom), in the spirit of IHE AI Results.

- One image measurement group (TID 1501) that references its source image, with the age as a NUM in UCUM
  years (`a`), the conformal interval's bounds as two more NUMs, and, when a classifier answers, each age
  group's probability (UCUM `1`).
- The algorithm (TID 4019: name, version, the model's SHA-256) and a device observer whose UID is derived from
  that SHA-256, so the same model is the same device in every report.
- The source image in the Current Requested Procedure Evidence Sequence; VerificationFlag UNVERIFIED; a series
  description that says research use, not for diagnosis.
- The SOP Instance UID derived from the source's UID and the model's SHA-256 (and the series UID from the
  study's), so that a rerun makes the same object: a PACS keeps one, never two.

Codes: SNOMED CT 397669002 "Age" names the estimate; what no standard vocabulary has (the interval bounds, an
age group's probability, the method) is coded in the private scheme `99CXRAGE`, as PS3.16 allows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import Comprehensive3DSRStorage, generate_uid

from cxr_age.errors import CxrAgeError

SCHEME = "99CXRAGE"
AGE = Code("397669002", "SCT", "Age")
LOW = Code("interval-low", SCHEME, "Estimated age prediction interval lower bound")
HIGH = Code("interval-high", SCHEME, "Estimated age prediction interval upper bound")
METHOD = Code("chest-radiograph-age", SCHEME, "Neural network estimate from frontal chest radiograph")
PROCEDURE = Code("399208008", "SCT", "Plain X-ray of chest")
YEARS = Code("a", "UCUM", "year")
NO_UNITS = Code("1", "UCUM", "no units")
DEVICE = Code("121007", "DCM", "Device")
SERIES_DESCRIPTION = "cxr-age estimated age - research use only, not for diagnosis"
SERIES_NUMBER = 9701
SHA_PARAMETER = "model sha256 "
ALGORITHM_PARAMETERS = "111002"  # DCM "Algorithm Parameters" (TID 4019)
MANUFACTURER = "cxr-age"
# Attributes a Comprehensive 3D SR must carry (Type 2: present, possibly empty) that an anonymised CR or DX
# often lacks; highdicom copies them from the evidence and fails where they are missing.
TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


@dataclass(frozen=True)
class Algorithm:
    """The model that made an estimate, as a report names it: `sha256` is the bundle's manifest's (or a run's
    model file's) SHA-256, the model's identity in reports, UIDs and the pull's ledger."""

    version: str
    sha256: str
    description: str

    @property
    def device_uid(self) -> str:
        return generate_uid(entropy_srcs=["cxr-age device", self.sha256])

    def report_uid(self, source_uid: str) -> str:
        return generate_uid(entropy_srcs=["cxr-age report", source_uid, self.sha256])

    def series_uid(self, study_uid: str) -> str:
        return generate_uid(entropy_srcs=["cxr-age series", study_uid, self.sha256])


@dataclass(frozen=True)
class AgeReport:
    """What a report says, read back: the age, its interval, the source image's UID and the model."""

    sop_instance_uid: str
    source_uid: str
    predicted_age: float
    interval_low: float | None
    interval_high: float | None
    model_sha256: str


def evidence_header(source: Dataset) -> Dataset:
    """The source's header without its pixels, with every absent Type 2 attribute an SR copies made present
    and empty (highdicom refuses anonymised images without them)."""
    header = Dataset()
    header.update({element.tag: element for element in source if element.keyword != "PixelData"})
    for keyword in TYPE_2:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


def _number(name: Code, value: float, unit: Code, hd) -> object:
    return hd.sr.Measurement(name=name, value=round(float(value), 3), unit=unit, method=METHOD)


def _measurements(prediction: pd.Series, hd) -> list:
    """The age NUM and its bounds, and each age group's probability where a classifier answered."""
    numbers = [_number(AGE, prediction["predicted_age"], YEARS, hd)]
    for name, column in ((LOW, "interval_low"), (HIGH, "interval_high")):
        if column in prediction and np.isfinite(prediction[column]):
            numbers.append(_number(name, prediction[column], YEARS, hd))
    for column in (c for c in prediction.index if str(c).startswith("p_")):
        group = str(column)[2:]
        numbers.append(_number(Code(f"p-{group}", SCHEME, f"Probability of age group {group}"),
                               prediction[column], NO_UNITS, hd))
    return numbers


def _content(header: Dataset, prediction: pd.Series, algorithm: Algorithm, hd) -> object:
    algorithm_id = hd.sr.AlgorithmIdentification(name="cxr-age", version=algorithm.version,
                                                 parameters=[SHA_PARAMETER + algorithm.sha256])
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=algorithm.report_uid(header.SOPInstanceUID),
                                                     identifier="estimated age"),
        algorithm_id=algorithm_id,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(header)],
        measurements=_measurements(prediction, hd))
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=algorithm.device_uid, name="cxr-age",
                                                       manufacturer_name=MANUFACTURER,
                                                       model_name=algorithm.description[:64])
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=DEVICE, observer_identifying_attributes=device))
    return hd.sr.MeasurementReport(observation_context=context, procedure_reported=PROCEDURE,
                                   imaging_measurements=[group])


def _highdicom():
    try:
        import highdicom
    except ImportError:
        raise CxrAgeError("DICOM SR results need highdicom: pip install \"cxr-age[pacs]\"") from None
    return highdicom


def age_report(source: Dataset, prediction: pd.Series, algorithm: Algorithm) -> Dataset:
    """The SR of one prediction (a row of `AgeModel.predict`, optionally with a classifier's `p_<group>`
    columns) about `source` (the image's header, with or without pixels).

    Examples:
        >>> report = age_report(dataset, model.predict(image).iloc[0], algorithm)
        >>> report.save_as("age.dcm")
    """
    hd = _highdicom()
    header = evidence_header(source)
    content = _content(header, prediction, algorithm, hd)
    return hd.sr.Comprehensive3DSR(
        evidence=[header], content=content, series_instance_uid=algorithm.series_uid(header.StudyInstanceUID),
        series_number=SERIES_NUMBER, sop_instance_uid=algorithm.report_uid(header.SOPInstanceUID),
        instance_number=1, manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description=SERIES_DESCRIPTION)


def _value(group, code: Code) -> float | None:
    found = group.get_measurements(name=code)
    return float(found[0].value) if found else None


def _parameters(items) -> list[str]:
    """The values of every Algorithm Parameters TEXT item (DCM 111002) under `items`, depth first."""
    found = []
    for item in items:
        concept = item.get("ConceptNameCodeSequence")
        if concept and concept[0].CodeValue == ALGORITHM_PARAMETERS and "TextValue" in item:
            found.append(str(item.TextValue))
        found.extend(_parameters(item.get("ContentSequence", [])))
    return found


def read_age_report(dataset: Dataset) -> AgeReport | None:
    """A cxr-age SR read back through highdicom's parser; None for any other object (another SR included)."""
    hd = _highdicom()
    if str(dataset.get("SOPClassUID", "")) != Comprehensive3DSRStorage or dataset.get("Manufacturer") != MANUFACTURER:
        return None
    report = hd.sr.Comprehensive3DSR.from_dataset(dataset, copy=False)
    groups = report.content.get_image_measurement_groups()
    evidence = report.get_evidence(current_procedure_only=True)
    if not groups or not evidence:
        return None
    sha = next((p.removeprefix(SHA_PARAMETER) for p in _parameters(dataset.ContentSequence)
                if p.startswith(SHA_PARAMETER)), "")
    group = groups[0]
    return AgeReport(str(dataset.SOPInstanceUID), str(evidence[0][2]), _value(group, AGE), _value(group, LOW),
                     _value(group, HIGH), sha)
