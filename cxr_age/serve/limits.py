"""The web service's limits and batching, as plain settings with their defaults: the one place the server,
its tests and `cxr-age-serve`'s flags take them from (this module imports nothing from the web stack, so the
command's `--help` works without the serve extra)."""

from __future__ import annotations

from dataclasses import dataclass

from cxr_age.io.declared_size import MAX_PIXELS

__all__ = ["MAX_PIXELS", "MIB", "Batching", "ServerLimits", "UploadLimits"]
MIB = 2**20


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
