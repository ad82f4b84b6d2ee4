"""Writing a prepared-image store (`cxr_age.io.store` holds its format and reader): every selected image
decoded once by the training decoder, resized, quantised to uint8 and saved in verified, resumable shards.

The decoder is TensorFlow's (`cxr_age.io.decode`), or, in a process without TensorFlow (a GPU machine that
carries JAX alone), its NumPy and OpenCV twin (`cxr_age.io.plain_images`). The two agree to float rounding,
so stored images match where no shrinking is needed; a shrunk pixel that falls exactly halfway between two
grey levels may round to either (a few percent of pixels, one level), and some JPEGs differ by a level."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxr_age.errors import CxrAgeError
from cxr_age.io.files import LOCK, folder_lock, sha256_of, write_atomic, write_csv, write_json
from cxr_age.io.plain_images import read_batches
from cxr_age.io.store import (
    FORMAT,
    INDEX,
    MANIFEST,
    STORE_ROOT,
    fingerprints,
    selection_digest,
    shard_files,
    shard_is_complete,
)
from cxr_age.runtime import has_tensorflow


def _decode_shard(paths: list[str], image_size: int) -> tuple[np.ndarray, dict[int, str]]:
    """Decode and resize `paths` in parallel as uint8; rows that fail stay zero and are returned with why."""
    if not has_tensorflow():
        return _decode_shard_without_tensorflow(paths, image_size)
    import tensorflow as tf

    from cxr_age.io.decode import AUTOTUNE, failure_reason, load_image

    def load(index: tf.Tensor, path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return index, tf.cast(tf.round(load_image(path, image_size)[..., 0] * 255.0), tf.uint8)

    images = np.zeros((len(paths), image_size, image_size), np.uint8)
    data = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths))
    done = set()
    for indices, batch in data.map(load, num_parallel_calls=AUTOTUNE).ignore_errors().batch(64):
        images[indices.numpy()] = batch.numpy()
        done.update(indices.numpy().tolist())
    return images, {i: failure_reason(paths[i]) for i in range(len(paths)) if i not in done}


def _decode_shard_without_tensorflow(paths: list[str], image_size: int) -> tuple[np.ndarray, dict[int, str]]:
    images = np.zeros((len(paths), image_size, image_size), np.uint8)
    failed: dict[int, str] = {}
    for batch in read_batches([Path(path) for path in paths], image_size, batch_size=64):
        images[batch.indices] = np.round(batch.images[..., 0] * 255.0).astype(np.uint8)
        failed.update(batch.skipped)
    return images, failed


@dataclass
class Prepared:
    """What `prepare_store` did: the store's folder, shards written and reused, and failed images."""

    folder: Path
    written: int
    reused: int
    failed: pd.DataFrame


def prepare_store(frame: pd.DataFrame, image_size: int, folder: Path | None = None, shard_size: int = 1024,
                  progress: bool = True, name: str = "store") -> Prepared:
    """Decode the `path` column of `frame` into a store in `folder` (default:
    `prepared/<name>-<size>px-<digest>/`, so the same selection finds its partial store again), resuming a
    store of the same selection and size, locked against a second process; verify every shard written against
    its recorded hash, then write the index."""
    files = fingerprints(frame["path"])
    digest = selection_digest(files, image_size)
    folder = folder or STORE_ROOT / f"{name}-{image_size}px-{digest[:8]}"
    manifest = {"format": FORMAT, "image_size": image_size, "shard_size": shard_size, "images": len(files),
                "digest": digest}
    saved = folder / MANIFEST
    if saved.is_file() and json.loads(saved.read_text()) != manifest:
        raise CxrAgeError(f"{folder} holds a store of other images or settings; choose another `out`")
    if not saved.is_file() and folder.exists() and any(p.name != LOCK for p in folder.iterdir()):
        raise CxrAgeError(f"{folder} exists and is not a prepared store; choose another `out` (nothing is overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder):
        write_json(manifest, saved)
        return _write_store(files, image_size, folder, shard_size, progress)


def _write_store(files: pd.DataFrame, image_size: int, folder: Path, shard_size: int, progress: bool) -> Prepared:
    shards = range(0, len(files), shard_size)
    written: list[int] = []
    reused = 0
    failures: dict[int, str] = {}
    with tqdm(total=len(files), desc="preparing", unit="img", disable=None if progress else True) as bar:
        for shard, start in enumerate(shards):
            paths = files["path"].iloc[start:start + shard_size].tolist()
            array, sidecar = shard_files(folder, shard)
            if shard_is_complete(folder, shard):
                failed = json.loads(sidecar.read_text())["failed"]
                reused += 1
            else:
                images, failed = _decode_shard(paths, image_size)
                write_atomic(array, lambda temporary, images=images: np.save(temporary, images))
                write_json({"sha256": sha256_of(array), "failed": failed}, sidecar)
                written.append(shard)
            failures.update({start + int(row): reason for row, reason in failed.items()})
            bar.update(len(paths))
    for shard in written:  # reused shards were checked against their hash when they were reused
        if not shard_is_complete(folder, shard):
            raise CxrAgeError(f"{shard_files(folder, shard)[0]} does not match its recorded hash after writing; "
                              "run prepare again to redo it")
    index = files.assign(shard=np.arange(len(files)) // shard_size, row=np.arange(len(files)) % shard_size,
                         reason=[failures.get(i, "") for i in range(len(files))])
    write_csv(index, folder / INDEX)
    return Prepared(folder, len(written), reused, index.loc[index["reason"] != "", ["path", "reason"]])
