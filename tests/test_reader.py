"""The parallel reading path of prediction (`cxr_age.io.reader`): the same pixels as reading one file at a
time, order kept, and every unreadable file skipped with its reason, wherever it falls in the batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxr_age.io.decode import read_image
from cxr_age.io.reader import _limited, read_batches

pytest.importorskip("pydicom")
from dicoms import write_dicom  # noqa: E402 - needs pydicom

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "images"


@pytest.fixture
def mixed(tmp_path) -> list[Path]:
    """Real sample PNGs, DICOM files (MONOCHROME1 with a window, a lateral one), a broken PNG and a missing
    file, interleaved."""
    pngs = sorted(SAMPLE.glob("*.png"))[:5]
    stored = (np.arange(96 * 80, dtype=np.uint16).reshape(96, 80) * 7) % 4096
    dicom = write_dicom(tmp_path / "a.dcm", stored, "MONOCHROME1", window=(2000, 3000))
    lateral = write_dicom(tmp_path / "lateral.dcm", stored, ViewPosition="LL")
    broken = tmp_path / "broken.png"
    broken.write_bytes(pngs[0].read_bytes()[:200])
    return [broken, pngs[0], dicom, pngs[1], tmp_path / "missing.png", pngs[2], lateral, pngs[3], pngs[4],
            broken]


@pytest.mark.parametrize("batch_size, threads", [(1, None), (3, None), (16, None), (3, 1)])
def test_same_images_as_one_at_a_time_and_every_skip_named(mixed, batch_size, threads):
    batches = list(read_batches(mixed, 64, batch_size, threads=threads))
    indices = [i for batch in batches for i in batch.indices]
    skipped = dict(skip for batch in batches for skip in batch.skipped)
    assert indices == [1, 2, 3, 5, 7, 8]
    assert sorted(skipped) == [0, 4, 6, 9]
    assert "lateral view (ViewPosition LL)" in skipped[6]
    assert "No such file" in skipped[4] or "not found" in skipped[4].lower()
    assert all(reason for reason in skipped.values())
    images = np.concatenate([batch.images for batch in batches])
    expected = np.stack([read_image(mixed[i], 64) for i in indices])
    np.testing.assert_allclose(images, expected, atol=1e-6)
    assert all(len(batch.images) <= batch_size for batch in batches)


def test_any_dicom_reads_the_lateral_file(mixed):
    batches = list(read_batches(mixed, 32, 4, any_dicom=True))
    assert 6 in [i for batch in batches for i in batch.indices]


def test_nothing_readable_gives_only_skips(tmp_path):
    broken = tmp_path / "x.png"
    broken.write_bytes(b"not an image")
    batches = list(read_batches([broken, broken], 32, 8))
    assert [batch.indices for batch in batches] == [[]]
    assert [i for i, _ in batches[0].skipped] == [0, 1]


def test_reading_threads_are_a_private_pool_of_that_size():
    import tensorflow as tf

    data = tf.data.Dataset.range(4)
    assert _limited(data, None).options().threading.private_threadpool_size is None
    threading = _limited(data, 2).options().threading
    assert (threading.private_threadpool_size, threading.max_intra_op_parallelism) == (2, 1)
