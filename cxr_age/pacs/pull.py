"""`cxr-age-pacs`: the chest radiographs of a DICOMweb archive, found by QIDO-RS (studies with CR or DX
images, by study date), checked on their WADO-RS metadata before any pixels move, retrieved one by one in
their stored transfer syntax into memory, predicted in batches, and, when asked, their reports stored back by
STOW-RS. The ledger makes the pull resumable; its rows are the `--csv` output (UIDs and ages, no names)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from tqdm import tqdm

from cxr_age.pacs.assessment import INELIGIBLE, PREDICTED, AgeReader, Assessment
from cxr_age.pacs.delivery import Retry, with_retries
from cxr_age.pacs.dicomweb import Archive, InstanceRef
from cxr_age.pacs.eligibility import ineligible
from cxr_age.pacs.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullSettings:
    """What to pull and where its ledger is.

    Args:
        ledger: the ledger CSV (created if absent, resumed if present).
        since: first study date (YYYYMMDD), or None.
        until: last study date (YYYYMMDD), or None.
        limit: predict at most this many instances in this run (None: all).
        store_reports: store each age as a DICOM SR in the archive (STOW-RS).
        batch_size: instances held in memory and predicted together.
    """

    ledger: Path
    since: str | None = None
    until: str | None = None
    limit: int | None = None
    store_reports: bool = False
    batch_size: int = 16
    retry: Retry = Retry()


@dataclass
class PullResult:
    """Counts of one pull: instances found, already done by an earlier run, predicted, reported, left over by
    `limit`, and the refusals by reason."""

    found: int = 0
    already_done: int = 0
    predicted: int = 0
    reports_stored: int = 0
    beyond_limit: int = 0
    refused: Counter = field(default_factory=Counter)

    def summary_lines(self) -> list[str]:
        lines = [f"{self.found} instance(s) in the CR/DX studies found; {self.already_done} done by an earlier "
                 f"run; {self.predicted} predicted, {self.reports_stored} report(s) stored; "
                 f"{sum(self.refused.values())} refused"]
        lines += [f"  refused, {reason}: {count}" for reason, count in self.refused.most_common()]
        if self.beyond_limit:
            lines.append(f"{self.beyond_limit} instance(s) left for a later run by `limit`")
        return lines


class _Pull:
    """One pull's state: the archive, the reader, the ledger and the batch being filled."""

    def __init__(self, archive: Archive, reader: AgeReader, settings: PullSettings) -> None:
        self.archive, self.reader, self.settings = archive, reader, settings
        self.ledger = Ledger(settings.ledger, reader.algorithm.sha256)
        self.result = PullResult()
        self.batch: list[tuple[InstanceRef, Dataset]] = []

    def visit(self, ref: InstanceRef) -> None:
        if self.ledger.done(ref.sop, self.settings.store_reports):
            self.result.already_done += 1
            return
        limit = self.settings.limit
        if limit is not None and self.result.predicted + len(self.batch) >= limit:
            self.result.beyond_limit += 1
            return
        reason = ineligible(self.archive.header(ref))
        if reason:
            self.record([(ref, Assessment(ref.sop, INELIGIBLE, reason))])
            return
        self.batch.append((ref, self.archive.retrieve(ref)))
        if len(self.batch) >= self.settings.batch_size:
            self.flush()

    def flush(self) -> None:
        """Predict the batch, store its reports, record it, and let its pixels go."""
        if not self.batch:
            return
        refs = [ref for ref, _ in self.batch]
        assessments = self.reader.assess([dataset for _, dataset in self.batch], self.settings.store_reports)
        self.batch = []
        reports = [a.report for a in assessments if a.report is not None]
        if reports:
            with_retries(lambda: self.archive.store(reports), self.settings.retry,
                         f"storing {len(reports)} report(s)")
            self.result.reports_stored += len(reports)
        self.record(list(zip(refs, assessments)))

    def record(self, pairs: list[tuple[InstanceRef, Assessment]]) -> None:
        rows = []
        for ref, assessment in pairs:
            if assessment.status == PREDICTED:
                self.result.predicted += 1
            else:
                self.result.refused[assessment.reason] += 1
            rows.append({**assessment.row(), "study_instance_uid": ref.study, "series_instance_uid": ref.series,
                         "report_stored": assessment.report is not None})
        self.ledger.record(rows)


def pull(archive: Archive, reader: AgeReader, settings: PullSettings, progress: bool = True) -> PullResult:
    """Predict (and report) the archive's chest radiographs that the ledger has not seen with this model.

    Examples:
        >>> result = pull(Archive("http://127.0.0.1:8042/dicom-web"), AgeReader(model),
        ...               PullSettings(Path("pacs.csv"), since="20240101", store_reports=True))
        >>> print("\\n".join(result.summary_lines()))
    """
    job = _Pull(archive, reader, settings)
    studies = archive.studies(settings.since, settings.until)
    refs = [ref for study in tqdm(studies, desc="studies", unit="study", disable=not progress, leave=False)
            for ref in archive.instances(study)]
    job.result.found = len(refs)
    log.info(f"{len(studies)} CR/DX stud(ies), {len(refs)} instance(s) at {archive.url}")
    for ref in tqdm(refs, desc="instances", unit="instance", disable=not progress):
        job.visit(ref)
    job.flush()
    return job.result
