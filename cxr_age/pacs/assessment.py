"""One model reading a batch of received DICOM instances, as both the pull and the listener do: each instance
is refused with its reason (`eligibility`, or a pixel decoder's failure), or gets an age and, when asked, its
DICOM SR (`age_report`). Nothing here names a patient: an instance is known by its SOP Instance UID."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset

from cxr_age import __version__
from cxr_age.age_model import AgeModel
from cxr_age.bundle.manifest import MANIFEST, is_bundle
from cxr_age.errors import CxrAgeError
from cxr_age.io.dicom import dataset_image
from cxr_age.io.files import sha256_of
from cxr_age.pacs.age_report import Algorithm, age_report
from cxr_age.pacs.eligibility import ineligible
from cxr_age.run import Run

PREDICTED, INELIGIBLE, UNREADABLE = "predicted", "ineligible", "unreadable"


def algorithm_of(model: AgeModel) -> Algorithm:
    """The model's identity in reports and ledgers: the SHA-256 of a bundle's manifest (which pins every file
    of the bundle), or of a run's model file."""
    folder = model.run.folder
    sha = sha256_of(folder / MANIFEST) if is_bundle(folder) else sha256_of(folder / Run.MODEL)
    experiment = model.experiment
    description = f"{model.task.name} {experiment.train.backbone} {model.image_size} px"
    return Algorithm(__version__, sha, description + (" (demo)" if model.demo else ""))


@dataclass
class Assessment:
    """What became of one instance: `status` PREDICTED (with the prediction and, if asked, the report),
    INELIGIBLE or UNREADABLE (with the reason)."""

    sop: str
    status: str
    reason: str = ""
    prediction: pd.Series | None = None
    report: Dataset | None = None

    def row(self) -> dict:
        """The instance as a ledger or CSV row: UIDs, status, reason and the age, never a patient field."""
        row = {"sop_instance_uid": self.sop, "status": self.status, "reason": self.reason}
        if self.prediction is not None:
            row.update({key: round(float(self.prediction[key]), 3) for key in
                        ("predicted_age", "interval_low", "interval_high") if key in self.prediction})
        if self.report is not None:
            row["report_uid"] = str(self.report.SOPInstanceUID)
        return row


class AgeReader:
    """A regressor (and optionally a classifier, whose group probabilities join the report) that reads
    datasets in batches.

    Examples:
        >>> reader = AgeReader(AgeModel.load("bundles/regress"))
        >>> [a.row() for a in reader.assess([dataset_a, dataset_b], reports=True)]
    """

    def __init__(self, model: AgeModel, classifier: AgeModel | None = None) -> None:
        if not model.task.predicts_age:
            raise CxrAgeError("the PACS tools write the regressor's age: give a regress run or bundle as `model`")
        self.model, self.classifier = model, classifier
        self.algorithm = algorithm_of(model)

    def check(self, dataset: Dataset) -> Assessment | np.ndarray:
        """The image of an eligible, decodable instance, or the refusal of one that is not."""
        sop = str(dataset.get("SOPInstanceUID", "") or "no SOP Instance UID")
        reason = ineligible(dataset)
        if reason:
            return Assessment(sop, INELIGIBLE, reason)
        try:
            return dataset_image(dataset, sop)
        except CxrAgeError as err:
            return Assessment(sop, UNREADABLE, str(err).removeprefix(f"{sop}: "))

    def assess(self, datasets: Sequence[Dataset], reports: bool = True) -> list[Assessment]:
        """Each dataset refused or read; those read are predicted in one batch (and reported, if `reports`)."""
        checked = [self.check(dataset) for dataset in datasets]
        readable = [i for i, item in enumerate(checked) if isinstance(item, np.ndarray)]
        if readable:
            frame = self._predict([checked[i] for i in readable])
            for position, index in enumerate(readable):
                prediction = frame.iloc[position]
                report = age_report(datasets[index], prediction, self.algorithm) if reports else None
                checked[index] = Assessment(str(datasets[index].SOPInstanceUID), PREDICTED,
                                            prediction=prediction, report=report)
        return checked

    def _predict(self, images: list[np.ndarray]) -> pd.DataFrame:
        frame = self.model.predict(images, batch_size=max(len(images), 1)).drop(columns="image")
        if self.classifier is not None:
            groups = self.classifier.predict(images, batch_size=max(len(images), 1))
            frame = pd.concat([frame, groups.filter(like="p_")], axis=1)
        return frame
