"""A `multipart/form-data` request body read as it streams in, into memory only, within limits: the request's
size (refused from its `Content-Length` before a byte is read, and counted as it arrives), each file's size
and the number of files. Frameworks' own form parsers spill large files into the system's temporary folder;
this one never writes, so an upload reaches the disk only where the service puts it
(`cxr_age.serve.service`: a private folder emptied after each response). The parser is python-multipart's
streaming `MultipartParser`, the one Starlette and FastAPI use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from cxr_age.serve.limits import MIB, UploadLimits

FIELD_BYTES = 1024  # a form field that is not a file (`saliency=1`) is a word, never a payload


class TooLarge(Exception):
    """The request is over one of its limits (HTTP 413); the message says which."""


class BadForm(Exception):
    """The body is not a multipart form (HTTP 400)."""


@dataclass
class Upload:
    """One uploaded file: the name the client gave (a label only, never a path) and its bytes."""

    label: str
    data: bytes


@dataclass
class Form:
    """The files of a request, in order, and its other fields."""

    files: list[Upload] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


class _Collector:
    """python-multipart's callbacks, gathering parts into a `Form` and holding each to its limit."""

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.form = Form()
        self.headers: dict[str, str] = {}
        self.field_name = self.value = b""
        self.data = bytearray()
        self.name, self.filename = "", None

    def callbacks(self) -> dict:
        return {"on_part_begin": self.begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end}

    def begin(self) -> None:
        self.headers, self.data = {}, bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.field_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def header_end(self) -> None:
        self.headers[self.field_name.decode("latin-1").lower()] = self.value.decode("utf-8", "replace")
        self.field_name = self.value = b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        filename = options.get(b"filename")
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        self.filename = None if filename is None else filename.decode("utf-8", "replace")
        if self.filename is not None and len(self.form.files) >= self.limits.files:
            raise TooLarge(f"more than {self.limits.files} files in one request")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self.data += data[start:end]
        limit = FIELD_BYTES if self.filename is None else self.limits.file_bytes
        if len(self.data) > limit:
            raise TooLarge("a form field is too long" if self.filename is None else
                           f"a file is over the limit of {limit / MIB:g} MiB")

    def part_end(self) -> None:
        if self.filename is None:
            self.form.fields[self.name] = self.data.decode("utf-8", "replace")
        else:
            self.form.files.append(Upload(self.filename, bytes(self.data)))


def _boundary(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise BadForm("send the files as multipart/form-data (an HTML form with enctype=multipart/form-data, "
                      "or curl -F files=@image.png)")
    return options[b"boundary"]


def check_length(content_length: str | None, limits: UploadLimits) -> None:
    """Refuse a request whose declared length is over the limit before any of it is read."""
    if content_length and content_length.isdigit() and int(content_length) > limits.request_bytes:
        raise TooLarge(f"the request is over the limit of {limits.request_bytes / MIB:g} MiB")


async def read_form(content_type: str, body: AsyncIterator[bytes], limits: UploadLimits) -> Form:
    """The form of a streamed request body; TooLarge as soon as a limit is passed, BadForm if it is not one."""
    collector = _Collector(limits)
    parser = MultipartParser(_boundary(content_type), collector.callbacks())
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > limits.request_bytes:
            raise TooLarge(f"the request is over the limit of {limits.request_bytes / MIB:g} MiB")
        try:
            parser.write(chunk)
        except TooLarge:
            raise
        except Exception as err:  # noqa: BLE001 - python-multipart's errors on a malformed body, all one 400
            raise BadForm(f"the form cannot be parsed: {err}") from None
    parser.finalize()
    return collector.form
