"""The prepared-image store: every selected image decoded once with the training decoder, resized to the
training size, quantised to uint8 and kept in `.npy` shards, so that an epoch reads small arrays instead of
decoding 1024 px PNGs (about 10 ms of one core each).

Why `.npy` shards rather than TFRecord: records of fixed size are found by (shard, row) with no parsing, so
batches can be read in any shuffled order; each image is one positioned read (`os.pread`) at a fixed offset,
so repeated epochs are served by the operating system's page cache and the reader's resident memory does not
grow with the data set (a memory map would count the pages it reads ahead as the process's own: 300 MB more for
the validation and test images of NIH at 64 px, and a row at a time it reads 30 times slower); reading needs
only NumPy; and each shard is one file, written under a temporary name, renamed into place and recorded with
its SHA-256 in a sidecar file. An interrupted `prepare` keeps every shard whose sidecar matches its file and
redoes the rest. The index (written last) lists every image with the size and modification time of its file,
so a store whose images changed no longer matches and the raw files are read instead.

This module holds the format and the reader, which need NumPy alone (so a machine without TensorFlow trains
from a store, `cxr_age.io.store_batches`); `cxr_age.io.store_writer` decodes and writes stores.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.files import sha256_of

STORE_ROOT = Path("prepared")
MANIFEST = "manifest.json"
INDEX = "index.csv"
FORMAT = 1
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def fingerprints(paths: pd.Series) -> pd.DataFrame:
    """Size in bytes and modification time (ns) of each file: what tells a changed image."""
    stats = [Path(path).stat() for path in paths]
    return pd.DataFrame({"path": paths.to_numpy(), "bytes": [s.st_size for s in stats],
                         "mtime_ns": [s.st_mtime_ns for s in stats]})


def selection_digest(files: pd.DataFrame, image_size: int) -> str:
    """One hash of the image size and every file's path, size and time: the store's identity."""
    text = f"{image_size}\n" + files[["path", "bytes", "mtime_ns"]].to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()


def shard_files(folder: Path, shard: int) -> tuple[Path, Path]:
    """A shard's array and its sidecar (hash and failed rows)."""
    return folder / f"shard-{shard:05d}.npy", folder / f"shard-{shard:05d}.json"


def shard_is_complete(folder: Path, shard: int) -> bool:
    """The shard and its sidecar exist and the array matches its recorded hash."""
    array, sidecar = shard_files(folder, shard)
    return array.is_file() and sidecar.is_file() and json.loads(sidecar.read_text())["sha256"] == sha256_of(array)


class PreparedStore:
    """A finished store: find images by path and read batches of them as uint8 `[n, size, size]`."""

    def __init__(self, folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text())
        self.folder = folder
        self.image_size = int(manifest["image_size"])
        self.shard_size = int(manifest["shard_size"])
        self.index = pd.read_csv(folder / INDEX, keep_default_na=False).set_index("path")
        self._shards: dict[int, tuple[BinaryIO, int]] = {}
        self._opening = threading.Lock()  # the pipeline reads batches from several threads

    def covers(self, paths: pd.Series) -> bool:
        """Every path is in the store and its file has not changed since it was prepared."""
        if not paths.isin(self.index.index).all():
            return False
        try:
            now = fingerprints(paths).set_index("path")
        except OSError:
            return False
        stored = self.index.loc[paths, ["bytes", "mtime_ns"]]
        return bool((now.to_numpy() == stored.to_numpy()).all())

    def require_size(self, image_size: int) -> None:
        """A one-line error unless the store holds `image_size` px images."""
        if self.image_size != image_size:
            raise CxrAgeError(f"the prepared store {self.folder} holds {self.image_size} px images, not {image_size}")

    def failures(self, paths: pd.Series) -> dict[int, str]:
        """Position in `paths` -> decoder message, for the images that could not be prepared."""
        reasons = self.index.loc[paths, "reason"].to_numpy()
        return {i: reason for i, reason in enumerate(reasons) if reason}

    def ids(self, paths: pd.Series) -> np.ndarray:
        """Global row numbers (shard * shard_size + row) of `paths`."""
        rows = self.index.loc[paths]
        return (rows["shard"].to_numpy(np.int64) * self.shard_size + rows["row"].to_numpy(np.int64))

    def _shard(self, shard: int) -> tuple[BinaryIO, int]:
        """The shard's open file and the offset of its first row (after the `.npy` header); the lock is taken
        only to open a shard, not for every image read."""
        opened = self._shards.get(shard)
        if opened is not None:
            return opened
        with self._opening:
            if shard not in self._shards:
                handle = open(shard_files(self.folder, shard)[0], "rb", buffering=0)  # noqa: SIM115 - closed in __del__
                _NPY_HEADERS[np.lib.format.read_magic(handle)](handle)  # leaves the file at the first row
                self._shards[shard] = (handle, handle.tell())
            return self._shards[shard]

    def read(self, ids: np.ndarray) -> np.ndarray:
        """The images of global rows `ids`, in that order."""
        pixels = self.image_size * self.image_size
        images = np.empty((len(ids), self.image_size, self.image_size), np.uint8)
        shards, rows = np.divmod(np.asarray(ids, np.int64), self.shard_size)
        for i, (shard, row) in enumerate(zip(shards.tolist(), rows.tolist())):
            handle, offset = self._shard(shard)
            data = os.pread(handle.fileno(), pixels, offset + row * pixels)
            if len(data) != pixels:
                raise CxrAgeError(f"{handle.name} is shorter than its index says; run prepare again")
            images[i] = np.frombuffer(data, np.uint8).reshape(self.image_size, self.image_size)
        return images

    def __del__(self) -> None:
        for handle, _ in getattr(self, "_shards", {}).values():
            handle.close()


def matching_store(paths: pd.Series, image_size: int, root: Path = STORE_ROOT) -> PreparedStore | None:
    """The first finished store under `root` of this image size that holds every one of `paths` unchanged."""
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        if not (manifest.parent / INDEX).is_file():
            continue
        store = PreparedStore(manifest.parent)
        if store.image_size == image_size and store.covers(paths):
            return store
    return None
