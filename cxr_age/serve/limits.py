"""The web service's limits and batching, as plain settings with their defaults: the one place the server,
its tests and `cxr-age-serve`'s flags take them from (this module imports nothing from the web stack, so the
command's `--help` works without the serve extra)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 2**20
MAX_PIXELS = 64_000_000  # a 12,000 x 5,300 film scan; a detector is at most about 4,300 x 4,300


@dataclass(frozen=True)
class UploadLimits:
    """Bytes per file and per request, and files per request."""

    file_bytes: int = 50 * MIB
    request_bytes: int = 100 * MIB
    files: int = 100


@dataclass(frozen=True)
class Batching:
    """The batching window in seconds, the most images combined into one batch, and how many requests may be
    in the house (queued or being predicted) at once."""

    window: float = 0.02
    max_images: int = 32
    capacity: int = 32


@dataclass(frozen=True)
class ServerLimits:
    """The upload limits and the batching of requests."""

    uploads: UploadLimits = UploadLimits()
    batching: Batching = Batching()
