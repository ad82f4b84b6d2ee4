"""`cxr-age-listen`: a DICOM storage SCP (pynetdicom) that a modality or router pushes chest radiographs to.
It answers C-ECHO, accepts every storage SOP class in each transfer syntax the reader decodes (so that every
refusal gets a counted reason rather than a failed association), holds instances by study until the study
has been quiet for a while (`studies`), then reads them (`assessment`) and sends each report on with retries
(`delivery`); what cannot be sent waits in the dead-letter folder and is tried again every
`redeliver_every` seconds. Received instances are dropped as soon as their study is done. A stop (SIGTERM)
closes the port, finishes the studies held and delivers or keeps their reports. Logs name UIDs and counts,
never a patient."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydicom import uid as uids

from cxr_age.errors import CxrAgeError
from cxr_age.pacs.assessment import PREDICTED, AgeReader
from cxr_age.pacs.delivery import DeadLetters, Retry, StoreScu, Stow, deliver, pynetdicom_module
from cxr_age.pacs.studies import HeldStudy, StudyBuffer

log = logging.getLogger(__name__)
SUCCESS, OUT_OF_RESOURCES = 0x0000, 0xA700
VERIFICATION = "1.2.840.10008.1.1"
# Every transfer syntax that pydicom decodes with the dicom extra's GDCM (12-bit JPEG Extended needs a
# GPL-3.0 plugin that cxr-age does not install; such an instance is received and refused with that reason).
TRANSFER_SYNTAXES = [uids.ImplicitVRLittleEndian, uids.ExplicitVRLittleEndian, uids.DeflatedExplicitVRLittleEndian,
                     uids.ExplicitVRBigEndian, uids.JPEGBaseline8Bit, uids.JPEGExtended12Bit, uids.JPEGLossless,
                     uids.JPEGLosslessSV1, uids.JPEGLSLossless, uids.JPEGLSNearLossless, uids.JPEG2000Lossless,
                     uids.JPEG2000, uids.RLELossless]


@dataclass(frozen=True)
class ListenSettings:
    """How the listener listens and holds.

    Args:
        port: the TCP port.
        dead_letters: the folder (made 0700) for reports that could not be delivered.
        aet: the listener's AE title.
        allow: the calling AE titles accepted (None: any).
        host: the address to listen on.
        study_timeout: seconds without a new instance after which a study is read.
        max_studies: studies held at once.
        max_bytes: bytes of received instances held at once.
        batch_size: instances predicted together.
        redeliver_every: seconds between tries of the dead-letter folder.
    """

    port: int
    dead_letters: Path
    aet: str = "CXRAGE"
    allow: tuple[str, ...] | None = None
    host: str = "0.0.0.0"
    study_timeout: float = 10.0
    max_studies: int = 8
    max_bytes: int = 512 * 2 ** 20
    batch_size: int = 16
    redeliver_every: float = 60.0
    retry: Retry = Retry()


class Listener:
    """The SCP, its holding area and the worker that reads studies and delivers their reports.

    Examples:
        >>> listener = Listener(AgeReader(model), StoreScu("ORTHANC@127.0.0.1:4242", "CXRAGE"),
        ...                     ListenSettings(port=11112, dead_letters=Path("dead")))
        >>> listener.start(); ...; listener.stop()
    """

    def __init__(self, reader: AgeReader, destination: StoreScu | Stow, settings: ListenSettings) -> None:
        self.reader, self.destination, self.settings = reader, destination, settings
        self.buffer = StudyBuffer(settings.study_timeout, settings.max_studies, settings.max_bytes)
        self.dead = DeadLetters(settings.dead_letters)
        self.counts: Counter = Counter()
        self._stopping = threading.Event()
        self._server = self._worker = None

    def start(self) -> None:
        """Open the port and start the worker."""
        pynetdicom = pynetdicom_module()
        evt = pynetdicom.evt
        ae = pynetdicom.AE(ae_title=self.settings.aet)
        for context in pynetdicom.AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
        ae.add_supported_context(VERIFICATION)
        if self.settings.allow:
            ae.require_calling_aet = list(self.settings.allow)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_REJECTED, self._on_rejected)]
        try:
            self._server = ae.start_server((self.settings.host, self.settings.port), block=False,
                                           evt_handlers=handlers)
        except OSError as err:
            raise CxrAgeError(f"cannot listen on {self.settings.host}:{self.settings.port}: {err.strerror}") from None
        self._worker = threading.Thread(target=self._work, name="cxr-age-listen worker", daemon=True)
        self._worker.start()
        allowed = ", ".join(self.settings.allow) if self.settings.allow else "any calling AE title (no --allow)"
        log.info(f"listening as {self.settings.aet} on {self.settings.host}:{self.settings.port}, accepting "
                 f"{allowed}; reports go to {self.destination.name}")

    def _on_rejected(self, event) -> None:
        self.counts["associations rejected"] += 1
        calling = event.assoc.requestor.ae_title
        log.warning(f"association from AE title {calling!r} rejected: not in --allow")

    def _on_store(self, event) -> int:
        """Hold the instance (status 0x0000), or answer 0xA700 when the bounds are reached."""
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        if not self.buffer.add(dataset, len(event.request.DataSet.getvalue())):
            self.counts["answered out of resources"] += 1
            log.warning(f"instance {dataset.get('SOPInstanceUID', '?')} answered 'out of resources': "
                        f"{self.buffer.held_bytes:,} bytes held; the sender will send it again")
            return OUT_OF_RESOURCES
        self.counts["received"] += 1
        return SUCCESS

    def _work(self) -> None:
        next_try = time.monotonic() + self.settings.redeliver_every
        while not self._stopping.wait(0.5):
            for study in self.buffer.stable():
                self._read(study)
            if time.monotonic() >= next_try:
                next_try = time.monotonic() + self.settings.redeliver_every
                if self.dead.letters():
                    self.dead.redeliver(self.destination)

    def _read(self, study: HeldStudy) -> None:
        """Read a study in batches, deliver its reports, and log what became of each instance."""
        datasets, reports, refused = study.datasets, [], Counter()
        count = len(datasets)
        for start in range(0, len(datasets), self.settings.batch_size):
            for assessment in self.reader.assess(datasets[start:start + self.settings.batch_size]):
                if assessment.status == PREDICTED:
                    reports.append(assessment.report)
                else:
                    refused[assessment.reason] += 1
                    log.info(f"instance {assessment.sop}: no age ({assessment.reason})")
        self.counts.update(refused)
        study.datasets.clear()
        delivered = deliver(self.destination, reports, self.settings.retry, self.dead) if reports else True
        self.counts["reports delivered" if delivered else "reports kept as dead letters"] += len(reports)
        log.info(f"study {study.uid}: {count} instance(s), {len(reports)} aged, {sum(refused.values())} "
                 f"refused; reports {'delivered to ' + self.destination.name if delivered else 'kept'}")

    def stop(self) -> None:
        """Close the port, then read every study still held and deliver (or keep) its reports."""
        if self._server is not None:
            self._server.shutdown()
        self._stopping.set()
        if self._worker is not None:
            self._worker.join()
        for study in self.buffer.drain():
            self._read(study)
        log.info("stopped: " + ", ".join(f"{key} {value}" for key, value in sorted(self.counts.items())))
