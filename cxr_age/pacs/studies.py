"""The listener's holding area: received instances grouped by study, a study handed on once no instance of it
has arrived for `timeout` seconds (as MONAI Deploy's Informatics Gateway and Orthanc's StableAge do), within
two bounds, the number of studies and the bytes held, past which a C-STORE is answered "out of resources" and
the sender keeps the instance to send again later."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset


@dataclass
class HeldStudy:
    """One study's instances as they arrived, their encoded size, and when the last came."""

    uid: str
    datasets: list[Dataset] = field(default_factory=list)
    size: int = 0
    last: float = 0.0


class StudyBuffer:
    """Studies in flight, safe to use from the listener's association threads and its worker.

    Examples:
        >>> buffer = StudyBuffer(timeout=10, max_studies=8, max_bytes=512 * 2**20)
        >>> buffer.add(dataset, size=len(encoded))
        True
        >>> [study.uid for study in buffer.stable()]
    """

    def __init__(self, timeout: float, max_studies: int, max_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout, self.max_studies, self.max_bytes, self.clock = timeout, max_studies, max_bytes, clock
        self._studies: dict[str, HeldStudy] = {}
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return sum(study.size for study in self._studies.values())

    def add(self, dataset: Dataset, size: int) -> bool:
        """Hold the instance under its study; False (nothing held) when a bound would be passed."""
        uid = str(dataset.get("StudyInstanceUID", "") or "no study")
        with self._lock:
            held = sum(study.size for study in self._studies.values())
            new_study = uid not in self._studies
            if held + size > self.max_bytes or (new_study and len(self._studies) >= self.max_studies):
                return False
            study = self._studies.setdefault(uid, HeldStudy(uid))
            study.datasets.append(dataset)
            study.size += size
            study.last = self.clock()
            return True

    def stable(self) -> list[HeldStudy]:
        """Take the studies that nothing has arrived for in `timeout` seconds."""
        now = self.clock()
        with self._lock:
            done = [uid for uid, study in self._studies.items() if now - study.last >= self.timeout]
            return [self._studies.pop(uid) for uid in done]

    def drain(self) -> list[HeldStudy]:
        """Take every study held (a stop)."""
        with self._lock:
            studies = list(self._studies.values())
            self._studies.clear()
            return studies
