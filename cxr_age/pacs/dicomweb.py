"""A DICOMweb archive (PS3.18) as the pull sees it, through dicomweb-client: QIDO-RS to find studies and
their instances, WADO-RS for an instance's metadata and for the instance itself in its stored transfer syntax,
STOW-RS to store results. Credentials come only from the environment (`CXR_AGE_DICOMWEB_USER` and
`CXR_AGE_DICOMWEB_PASSWORD` for HTTP basic authentication, or `CXR_AGE_DICOMWEB_TOKEN` for a bearer token),
never from a command line, where other users of the machine can read them. Every failure of the server or the
network is one CxrAgeError naming the URL and the HTTP status, never the credentials."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydicom.dataset import Dataset

from cxr_age.errors import CxrAgeError

USER, PASSWORD, TOKEN = "CXR_AGE_DICOMWEB_USER", "CXR_AGE_DICOMWEB_PASSWORD", "CXR_AGE_DICOMWEB_TOKEN"
MODALITIES = ("CR", "DX")  # one query each: a multi-valued ModalitiesInStudy match is not portable
STORED_SYNTAX = (("application/dicom", "*"),)  # WADO-RS: the instance as stored, not transcoded
PIXEL_TAGS = ("7FE00010", "7FE00008", "7FE00009")
PAGE = 500  # answers per QIDO-RS request


class ArchiveError(CxrAgeError):
    """The archive or the network failed: the run stops with one line, and what it finished is kept."""


@dataclass(frozen=True)
class InstanceRef:
    """Where one instance lives: its study, series and SOP Instance UIDs."""

    study: str
    series: str
    sop: str


def _session(url: str):
    import requests

    session = requests.Session()
    if os.environ.get(TOKEN):
        session.headers["Authorization"] = f"Bearer {os.environ[TOKEN]}"
    elif os.environ.get(USER):
        session.auth = (os.environ[USER], os.environ.get(PASSWORD, ""))
    return session


def _plain_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CxrAgeError(f"{url!r} is not a DICOMweb root: give an http:// or https:// URL "
                          "(e.g. http://pacs.example.org/dicom-web)")
    if parts.username or parts.password:
        raise CxrAgeError(f"the URL carries credentials: set {USER} and {PASSWORD} (or {TOKEN}) in the "
                          "environment instead")
    return url.rstrip("/")


class Archive:
    """A DICOMweb root with credentials from the environment.

    Examples:
        >>> archive = Archive("http://127.0.0.1:8042/dicom-web")
        >>> for study in archive.studies(since="20240101"):
        ...     refs = archive.instances(study)
    """

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        try:
            from dicomweb_client.api import DICOMwebClient
        except ImportError:
            raise CxrAgeError("the DICOMweb pull needs dicomweb-client: pip install \"cxr-age[pacs]\"") from None
        self.url = _plain_url(url)
        session = _session(self.url)
        session.request = _with_timeout(session.request, timeout)
        self.client = DICOMwebClient(self.url, session=session)

    @contextlib.contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Any failure of the request as one ArchiveError naming the server and what was asked."""
        import requests

        try:
            yield
        except requests.HTTPError as err:
            status = err.response.status_code if err.response is not None else "?"
            hint = (f": set {USER} and {PASSWORD}, or {TOKEN}" if status in (401, 403) else "")
            raise ArchiveError(f"{self.url} answered HTTP {status} to {what}{hint}") from None
        except requests.RequestException as err:
            raise ArchiveError(f"cannot reach {self.url} ({what}): {type(err).__name__}") from None

    def check(self) -> None:
        """One small QIDO-RS query, tried once, so that a wrong URL or credential ends the command at once,
        before a model loads. (Later requests are retried with dicomweb-client's backoff, five tries over
        about 30 s, which rides out a busy or restarting server.)"""
        self.client.set_http_retry_params(retry=False)
        try:
            with self._calling("a first query"):
                self.client.search_for_studies(limit=1)
        finally:
            self.client.set_http_retry_params()

    def studies(self, since: str | None = None, until: str | None = None) -> list[str]:
        """Study Instance UIDs of the studies holding CR or DX images, within the study dates (YYYYMMDD,
        both ends included), each once, in the order found."""
        filters = {}
        if since or until:
            filters["StudyDate"] = f"{since or ''}-{until or ''}"
        found: dict[str, None] = {}
        for modality in MODALITIES:
            pages = self._pages(self.client.search_for_studies, f"the {modality} study query",
                                search_filters={**filters, "ModalitiesInStudy": modality})
            found.update((answer.StudyInstanceUID, None) for answer in pages)
        return list(found)

    def _pages(self, search, what: str, **query) -> list[Dataset]:
        """Every answer of a QIDO-RS query, a page of PAGE at a time with an explicit limit and offset (some
        servers ignore an offset without a limit and answer the first page forever); a page that brings
        nothing new ends it too."""
        answers: dict[str, Dataset] = {}
        while True:
            with self._calling(what):
                page = [Dataset.from_json(answer) for answer in search(limit=PAGE, offset=len(answers), **query)]
            new = {_key(answer): answer for answer in page if _key(answer) not in answers}
            answers.update(new)
            if len(page) < PAGE or not new:
                return list(answers.values())

    def instances(self, study: str) -> list[InstanceRef]:
        """Every instance of a study (images, reports and all, so that each refusal is counted)."""
        answers = self._pages(self.client.search_for_instances, "an instance query", study_instance_uid=study)
        return [InstanceRef(study, str(d.SeriesInstanceUID), str(d.SOPInstanceUID)) for d in answers]

    def header(self, ref: InstanceRef) -> Dataset:
        """An instance's attributes without its pixels (WADO-RS metadata)."""
        with self._calling("a metadata request"):
            metadata = self.client.retrieve_instance_metadata(ref.study, ref.series, ref.sop)
        return Dataset.from_json({tag: value for tag, value in metadata.items() if tag not in PIXEL_TAGS})

    def retrieve(self, ref: InstanceRef) -> Dataset:
        """The whole instance, in the transfer syntax the archive stores it in."""
        with self._calling("an instance retrieval"):
            return self.client.retrieve_instance(ref.study, ref.series, ref.sop, media_types=STORED_SYNTAX)

    def store(self, datasets: Sequence[Dataset]) -> None:
        """STOW-RS: store the datasets (one request)."""
        with self._calling("a STOW-RS store"):
            self.client.store_instances(list(datasets))


def _key(answer: Dataset) -> str:
    return str(answer.get("SOPInstanceUID") or answer.get("StudyInstanceUID"))


def _with_timeout(request, timeout: float):
    """`session.request` with a default timeout, so that a server that stops answering ends the run instead
    of hanging it."""
    def timed(method, url, **kwargs):
        kwargs.setdefault("timeout", timeout)
        return request(method, url, **kwargs)

    return timed
