"""Delivering results where they belong, without losing any: to a DICOM node by C-STORE (pynetdicom) or to a
DICOMweb archive by STOW-RS, each attempt retried with exponential backoff; what still fails is written to a
dead-letter folder (0700) with its reason, and tried again later (`DeadLetters.redeliver`), so that a result
is either delivered or on disk, never silently gone."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import Comprehensive3DSRStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from cxr_age.errors import CxrAgeError
from cxr_age.io.files import write_text
from cxr_age.pacs.dicomweb import Archive

log = logging.getLogger(__name__)
NODE = re.compile(r"^(?P<aet>[^@\\]{1,16})@(?P<host>[^:@\s]+):(?P<port>\d{1,5})$")
SUCCESS_OR_WARNING = (0x0000, 0xB000, 0xB006, 0xB007)  # PS3.4 C-STORE: success, coercion and element warnings


def pynetdicom_module():
    """pynetdicom, or a one-line error naming the extra that brings it."""
    try:
        import pynetdicom
    except ImportError:
        raise CxrAgeError("DICOM networking needs pynetdicom: pip install \"cxr-age[pacs]\"") from None
    return pynetdicom


class DeliveryError(CxrAgeError):
    """A destination did not take a result."""


@dataclass(frozen=True)
class Retry:
    """Attempts and exponential backoff: waits of `first_wait`, x`factor` each time, at most `max_wait` s."""

    attempts: int = 4
    first_wait: float = 1.0
    factor: float = 2.0
    max_wait: float = 30.0

    def waits(self) -> list[float]:
        return [min(self.first_wait * self.factor ** n, self.max_wait) for n in range(self.attempts - 1)]


class StoreScu:
    """A DICOM node that takes reports by C-STORE (`AET@HOST:PORT`), called from the listener's AE title."""

    def __init__(self, node: str, calling_aet: str, timeout: float = 30.0) -> None:
        match = NODE.match(node)
        if not match or not 0 < int(match["port"]) < 65536:
            raise CxrAgeError(f"{node!r} is not a DICOM node: write AET@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
        self.aet, self.host, self.port = match["aet"], match["host"], int(match["port"])
        self.calling_aet, self.timeout = calling_aet, timeout
        self.name = node

    def send(self, datasets: Sequence[Dataset]) -> None:
        ae = pynetdicom_module().AE(ae_title=self.calling_aet)
        ae.add_requested_context(Comprehensive3DSRStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        association = ae.associate(self.host, self.port, ae_title=self.aet)
        if not association.is_established:
            raise DeliveryError(f"{self.name} did not accept an association")
        try:
            for dataset in datasets:
                status = association.send_c_store(dataset)
                code = int(getattr(status, "Status", -1)) if status else -1
                if code not in SUCCESS_OR_WARNING:
                    raise DeliveryError(f"{self.name} answered C-STORE status 0x{max(code, 0):04X}")
        finally:
            association.release()


class Stow:
    """A DICOMweb archive that takes reports by STOW-RS."""

    def __init__(self, url: str) -> None:
        self.archive = Archive(url)
        self.name = self.archive.url

    def send(self, datasets: Sequence[Dataset]) -> None:
        self.archive.store(datasets)


def with_retries(send: Callable[[], None], retry: Retry, what: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """`send()`, retried after each failure with the policy's waits; the last failure is raised."""
    for wait in [*retry.waits(), None]:
        try:
            send()
            return
        except CxrAgeError as err:
            if wait is None:
                raise
            log.warning(f"{what} failed ({err}); retrying in {wait:g} s")
            sleep(wait)


class DeadLetters:
    """A private folder (0700) of results that could not be delivered: `<SOP Instance UID>.dcm` beside a
    `.reason.txt` saying why, until `redeliver` gets them through."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)

    def keep(self, datasets: Sequence[Dataset], reason: str) -> None:
        for dataset in datasets:
            path = self.folder / f"{dataset.SOPInstanceUID}.dcm"
            dataset.save_as(path, enforce_file_format=True)
            write_text(reason + "\n", path.with_suffix(".reason.txt"))
        log.warning(f"{len(datasets)} result(s) kept in the dead-letter folder {self.folder}: {reason}")

    def letters(self) -> list[Path]:
        return sorted(self.folder.glob("*.dcm"))

    def redeliver(self, destination: StoreScu | Stow) -> int:
        """Send every kept result once more; those delivered leave the folder. Returns how many did."""
        delivered = 0
        for path in self.letters():
            try:
                destination.send([dcmread(path)])
            except CxrAgeError:
                break  # still down: the rest wait for the next try
            path.unlink()
            path.with_suffix(".reason.txt").unlink(missing_ok=True)
            delivered += 1
        if delivered:
            log.info(f"{delivered} result(s) from the dead-letter folder delivered to {destination.name}")
        return delivered


def deliver(destination: StoreScu | Stow, datasets: Sequence[Dataset], retry: Retry, dead: DeadLetters,
            sleep: Callable[[float], None] = time.sleep) -> bool:
    """Send with retries; on final failure keep the results as dead letters. True if delivered."""
    try:
        with_retries(lambda: destination.send(datasets), retry, f"sending {len(datasets)} result(s) to "
                     f"{destination.name}", sleep)
        return True
    except CxrAgeError as err:
        dead.keep(datasets, str(err))
        return False
