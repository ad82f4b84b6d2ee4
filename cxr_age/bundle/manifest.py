"""A bundle's manifest: its format version, what it holds, and the SHA-256 of every file, checked before
anything in the bundle is loaded."""

from __future__ import annotations

import json
from pathlib import Path

from cxr_age.errors import CxrAgeError
from cxr_age.io.files import sha256_of, write_json

MANIFEST = "manifest.json"
KIND = "cxr-age model bundle"
FORMAT = 1


def write_manifest(folder: Path, facts: dict) -> Path:
    """The manifest of every file in `folder` (written last, so that it covers them all)."""
    files = {path.relative_to(folder).as_posix(): sha256_of(path)
             for path in sorted(folder.rglob("*")) if path.is_file() and path.name != MANIFEST}
    return write_json({"kind": KIND, "format": FORMAT, **facts, "files": files}, folder / MANIFEST)


def is_bundle(folder: Path) -> bool:
    """Whether `folder` holds a bundle's manifest (a run's manifest is of another kind)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("kind") == KIND
    except (ValueError, UnicodeDecodeError):
        return False


def verify(folder: Path, sha256: str | None = None) -> dict:
    """The manifest of the bundle in `folder`, once every file it lists matches its SHA-256 and, when given,
    the manifest itself matches `sha256`; a CxrAgeError naming the first file that does not."""
    path = folder / MANIFEST
    if sha256 is not None and sha256_of(path) != sha256.lower():
        raise CxrAgeError(f"{path} does not match the expected SHA-256 {sha256}: not the bundle that was named")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise CxrAgeError(f"{path} is not a bundle manifest: {err}") from None
    if manifest.get("kind") != KIND or manifest.get("format") != FORMAT:
        raise CxrAgeError(f"{path} is not a cxr-age model bundle of format {FORMAT}")
    for name, expected in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise CxrAgeError(f"{file} is missing from the bundle")
        if sha256_of(file) != expected:
            raise CxrAgeError(f"{file} does not match the SHA-256 in its bundle's manifest: altered or cut short")
    return manifest
