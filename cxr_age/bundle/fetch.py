"""A bundle named by URL, downloaded once into a cache and verified before anything in it is loaded.

`https://`, `http://` and `file://` URLs of a zip or tar archive (gzip, bzip2 or xz) of a bundle folder are
read into the cache folder (`cxr_age.paths.cache_dir`: `$CXR_AGE_CACHE`, default `~/.cache/cxr-age`) under
`bundles/<key>/`, the key being the expected SHA-256 of the archive when one is given, else a hash of the URL.
The archive is streamed into a temporary file beside the cache and hashed as it arrives; it is unpacked (no
member may leave the folder, and links are refused) into a temporary folder, whose manifest is checked file by
file, and only then renamed into place: a download cut short, an altered byte or a failed check leaves nothing
in the cache. A cached bundle loads with the network off, and is checked against its manifest again on every
load.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from cxr_age.bundle.manifest import MANIFEST, is_bundle, verify
from cxr_age.errors import CxrAgeError
from cxr_age.paths import cache_dir

SCHEMES = ("http", "https", "file")
TIMEOUT_S = 60
CHUNK = 1 << 20  # bytes read from the connection at a time


def is_url(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and "://" in source


def _download(url: str, target: Path) -> str:
    """Stream `url` into `target`; its SHA-256."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(target, "wb") as out:
            expected = response.headers.get("Content-Length")
            received = 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise CxrAgeError(f"cannot download {url}: {getattr(err, 'reason', err)}") from None
    if expected is not None and received != int(expected):
        raise CxrAgeError(f"the download of {url} was cut short ({received} of {expected} bytes)")
    return digest.hexdigest()


def _unpack(archive: Path, folder: Path, url: str) -> None:
    """Unpack a zip or tar archive into `folder`; members that would leave it, and links, are refused."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for name in bundle.namelist():
                if Path(name).is_absolute() or ".." in Path(name).parts:
                    raise CxrAgeError(f"{url}: the archive member {name!r} would be written outside its folder")
            bundle.extractall(folder)
        return
    try:
        with tarfile.open(archive) as bundle:
            bundle.extractall(folder, filter="data")
    except (tarfile.TarError, OSError) as err:
        raise CxrAgeError(f"{url} is not a zip or tar archive of a bundle: {err}") from None


def _bundle_root(folder: Path, url: str) -> Path:
    """The folder of the unpacked archive that holds the manifest: its top, or its one subfolder."""
    if is_bundle(folder):
        return folder
    inner = [path for path in folder.iterdir() if path.is_dir()]
    if len(inner) == 1 and is_bundle(inner[0]):
        return inner[0]
    raise CxrAgeError(f"{url} holds no bundle ({MANIFEST} at its top or in its one folder)")


def fetch(url: str, sha256: str | None = None) -> Path:
    """The local folder of the bundle at `url`: from the cache, or downloaded, checked and cached now."""
    scheme = urlparse(url).scheme
    if scheme not in SCHEMES:
        raise CxrAgeError(f"cannot read {url}: a bundle URL starts with {', '.join(f'{s}://' for s in SCHEMES)}")
    key = sha256.lower() if sha256 else hashlib.sha256(url.encode()).hexdigest()
    root = cache_dir() / "bundles"
    cached = root / key[:32]
    if is_bundle(cached):
        return cached
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as scratch:
        archive = Path(scratch) / "archive"
        received = _download(url, archive)
        if sha256 is not None and received != key:
            raise CxrAgeError(f"{url} does not match the expected SHA-256 {sha256} (it has {received}): altered, "
                              "cut short or another file; nothing was kept")
        unpacked = Path(scratch) / "bundle"
        _unpack(archive, unpacked, url)
        bundle = _bundle_root(unpacked, url)
        verify(bundle)
        try:
            os.replace(bundle, cached)
        except OSError:
            if not is_bundle(cached):  # another process cached the same bundle meanwhile: use theirs
                shutil.rmtree(cached, ignore_errors=True)
                raise CxrAgeError(f"cannot move the bundle of {url} into the cache at {cached}") from None
    return cached
