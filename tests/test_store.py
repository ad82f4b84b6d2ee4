"""The prepared-image store: the pipeline's own images in uint8 shards, found only while the files are
unchanged, verified by hash, redone where damaged, and resumed after a real process is killed."""

import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import FULL_SIZE, guarded_environment, write_bar_images

from cxr_age.config import DataConfig, Experiment, TrainConfig
from cxr_age.errors import CxrAgeError
from cxr_age.io.decode import load_image
from cxr_age.io.feed import Feed
from cxr_age.io.pipeline import make_dataset
from cxr_age.io.selection import select
from cxr_age.io.store import PreparedStore, matching_store
from cxr_age.io.store_batches import BatchShare, StoreBatches
from cxr_age.io.store_writer import prepare_store
from cxr_age.tasks import REGRESS
from cxr_age.workflows.training import prepare_data

SIZE = 32


@pytest.fixture
def bars(tmp_path):
    """Twelve bar images (one of them broken) and their selection."""
    csv = write_bar_images(tmp_path / "images", 12)
    (tmp_path / "images" / "bar0005.png").write_bytes(b"not a png")
    return select(DataConfig(csv=str(csv), image_dir=str(tmp_path / "images"), image_size=SIZE)).frame


def test_store_holds_the_pipelines_images_and_its_failures(bars, tmp_path):
    result = prepare_store(bars, SIZE, tmp_path / "store", shard_size=5, progress=False)
    assert (result.written, result.reused) == (3, 0)
    assert result.failed["path"].str.endswith("bar0005.png").tolist() == [True]
    store = PreparedStore(tmp_path / "store")
    stored = store.read(store.ids(bars["path"]))
    for row, path in enumerate(bars["path"]):
        if path.endswith("bar0005.png"):
            assert stored[row].max() == 0
            continue
        expected = np.round(load_image(tf.constant(path), SIZE).numpy()[..., 0] * 255)
        np.testing.assert_array_equal(stored[row], expected.astype(np.uint8))
    assert store.failures(bars["path"]) == {5: store.index.loc[bars["path"][5], "reason"]}


def test_a_shard_cut_short_after_prepare_is_named_when_read(bars, tmp_path):
    prepare_store(bars, SIZE, tmp_path / "store", shard_size=5, progress=False)
    shard = tmp_path / "store" / "shard-00002.npy"
    shard.write_bytes(shard.read_bytes()[:-SIZE * SIZE])
    store = PreparedStore(tmp_path / "store")
    assert store.read(store.ids(bars["path"][:10])).shape == (10, SIZE, SIZE)
    with pytest.raises(CxrAgeError, match="shard-00002.npy is shorter than its index says"):
        store.read(store.ids(bars["path"][10:]))


def test_batches_from_the_store_match_the_raw_files(bars, tmp_path):
    good = bars.drop(index=5).reset_index(drop=True)
    prepare_store(good, SIZE, tmp_path / "store", shard_size=4, progress=False)
    store = PreparedStore(tmp_path / "store")
    raw = np.concatenate([x.numpy() for x, _ in make_dataset(good, REGRESS.targets(good), SIZE, 4)])
    prepared = np.concatenate([x.numpy() for x, _ in make_dataset(good, REGRESS.targets(good), SIZE, 4, store=store)])
    assert prepared.shape == raw.shape == (11, SIZE, SIZE, 1)
    assert np.abs(prepared - raw).max() <= 0.5 / 255 + 1e-6
    shuffled = make_dataset(good, REGRESS.targets(good), SIZE, 3, Feed(shuffle=True), store)
    targets = np.sort(np.concatenate([y.numpy() for _, y in shuffled]))
    np.testing.assert_allclose(targets, np.sort(good["age"].to_numpy() / 90), rtol=1e-6)


def test_numpy_batches_of_a_store_are_the_tf_data_batches(bars, tmp_path):
    """`StoreBatches` (what feeds a network without TensorFlow) gives the tf.data pipeline's pixels and targets
    in order; shuffled, every epoch is a new order of every image once, the same for the same seed."""
    good = bars.drop(index=5).reset_index(drop=True)
    prepare_store(good, SIZE, tmp_path / "store", shard_size=4, progress=False)
    store = PreparedStore(tmp_path / "store")
    targets = REGRESS.targets(good)
    ordered = StoreBatches(store, good, targets, 4)
    assert len(ordered) == 3 and [len(ordered[i][0]) for i in range(3)] == [4, 4, 3]
    for (images, ages), (tf_images, tf_ages) in zip((ordered[i] for i in range(3)),
                                                    make_dataset(good, targets, SIZE, 4, store=store)):
        np.testing.assert_array_equal(images, tf_images.numpy())
        np.testing.assert_array_equal(ages, tf_ages.numpy())

    def epochs(seed: int) -> list[list[float]]:
        batches = StoreBatches(store, good, targets, 3, Feed(shuffle=True, seed=seed))
        orders = []
        for _ in range(2):
            orders.append(np.concatenate([batches[i][1] for i in range(len(batches))]).tolist())
            batches.on_epoch_end()
        return orders

    first, second = epochs(seed=7)
    assert sorted(first) == sorted(second) == sorted(targets.tolist()) and first != second
    assert epochs(seed=7) == [first, second] and epochs(seed=8)[0] != first
    with pytest.raises(CxrAgeError, match="`augment` runs in the tf.data pipeline"):
        StoreBatches(store, good, targets, 4, Feed(augment=True))


def test_processes_share_each_global_batch_without_reading_an_image_twice(bars, tmp_path):
    """Under a JAX distribution each process reads its contiguous part of every global batch: side by side the
    parts are the one-device batch, no image is read twice, and only the last batch is cut to a multiple of the
    devices (11 images, batches of 4, 2 devices: the last batch of 3 loses one)."""
    good = bars.drop(index=5).reset_index(drop=True)
    prepare_store(good, SIZE, tmp_path / "store", shard_size=4, progress=False)
    store = PreparedStore(tmp_path / "store")
    targets = REGRESS.targets(good)
    whole = StoreBatches(store, good, targets, 4, Feed(shuffle=True, seed=3))
    parts = [StoreBatches(store, good, targets, 4, Feed(shuffle=True, seed=3), share=BatchShare(i, 2, 2))
             for i in range(2)]
    assert len(parts[0]) == len(whole) == 3 and parts[0].left_out == 1
    read = []
    for index in range(len(whole)):
        joined = np.concatenate([part[index][1] for part in parts])
        expected = whole[index][1]
        np.testing.assert_array_equal(joined, expected[:len(expected) - len(expected) % 2])
        read.extend(joined.tolist())
    assert len(read) == len(set(read)) == 10


def test_a_store_matches_only_unchanged_images_of_its_size(bars, tmp_path):
    root = tmp_path / "prepared"
    prepare_store(bars, SIZE, root / "one", progress=False)
    assert matching_store(bars["path"], SIZE, root) is not None
    assert matching_store(bars["path"], SIZE * 2, root) is None
    assert matching_store(bars["path"].iloc[:4], SIZE, root) is not None
    os.utime(bars["path"][0], ns=(0, 0))
    assert matching_store(bars["path"], SIZE, root) is None


def test_a_damaged_shard_is_redone_and_other_settings_refused(bars, tmp_path):
    prepare_store(bars, SIZE, tmp_path / "store", shard_size=5, progress=False)
    shard = tmp_path / "store" / "shard-00001.npy"
    damaged = bytearray(shard.read_bytes())
    damaged[-1] ^= 0xFF
    shard.write_bytes(bytes(damaged))
    again = prepare_store(bars, SIZE, tmp_path / "store", shard_size=5, progress=False)
    assert (again.written, again.reused) == (1, 2)
    with pytest.raises(CxrAgeError, match="holds a store of other images or settings"):
        prepare_store(bars, SIZE * 2, tmp_path / "store", progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(CxrAgeError, match="is not a prepared store"):
        prepare_store(bars, SIZE, tmp_path / "mine", progress=False)


def test_training_uses_a_matching_store_and_its_record_of_broken_files(bars, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="cxr_age")
    prepare_store(bars, SIZE, tmp_path / "prepared" / "bars", progress=False)
    csv = tmp_path / "labels.csv"
    config = Experiment(data=DataConfig(csv=str(csv), image_size=SIZE),
                        train=TrainConfig(task="regress", backbone="densenet121"))
    (tmp_path / "run").mkdir()
    with pytest.raises(CxrAgeError, match="1 of 12 image files cannot be decoded .*bar0005.png"):
        prepare_data(config, tmp_path / "run")
    assert "reading prepared images from prepared/bars" in caplog.text
    config.data.skip_unreadable = True
    _, parts, store = prepare_data(config, tmp_path / "run")
    assert store is not None and store.folder.name == "bars"
    assert sum(len(part) for part in parts.values()) == 11


@pytest.mark.long
def test_an_interrupted_prepare_resumes(tmp_path):
    """SIGKILL a real `cxr-age-data prepare` of 480 full-size NIH PNGs (copies of the seven fixtures) after its
    first shard, then rerun."""
    originals = sorted(FULL_SIZE.glob("*.png"))
    labels = pd.DataFrame({"image": [f"{i:08d}_000.png" for i in range(480)],
                           "age": np.linspace(2, 88, 480).round(1), "patient_id": [str(i) for i in range(480)]})
    (tmp_path / "images").mkdir()
    for i, name in enumerate(labels["image"]):
        shutil.copyfile(originals[i % len(originals)], tmp_path / "images" / name)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    store = tmp_path / "store"
    command = [sys.executable, "-m", "cxr_age", "data", "prepare", "--csv", str(tmp_path / "labels.csv"),
               "--image-dir", str(tmp_path / "images"), "--image-size", "64", "--shard-size", "16",
               "--out", str(store)]
    process = subprocess.Popen(command, env=guarded_environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (store / "shard-00000.json").is_file():
        assert process.poll() is None and time.monotonic() < deadline, "prepare ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    finished = len(list(store.glob("shard-*.json")))
    assert 1 <= finished < 30 and not (store / "index.csv").exists()
    resumed = subprocess.run(command, env=guarded_environment(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{30 - finished} shards written, {finished} reused" in resumed.stdout
    prepared = PreparedStore(store)
    paths = pd.Series([str(tmp_path / "images" / name) for name in labels["image"]])
    assert prepared.covers(paths) and not prepared.failures(paths)
    for row in (0, 200, 476):
        expected = np.round(load_image(tf.constant(paths[row]), 64).numpy()[..., 0] * 255).astype(np.uint8)
        np.testing.assert_array_equal(prepared.read(prepared.ids(paths.iloc[[row]]))[0], expected)
