"""DICOM input: the grayscale pipeline of PS3.3 C.11 (rescale, window, VOI LUT, MONOCHROME1), and refusals."""

import numpy as np
import pytest
from dicoms import write_dicom

from cxr_age.errors import CxrAgeError
from cxr_age.io.dicom import is_dicom, read_dicom

RAMP = np.tile(np.arange(0, 4096, 16, dtype=np.uint16), (4, 1))


def test_monochrome2_without_window_spans_its_value_range(tmp_path):
    gray = read_dicom(write_dicom(tmp_path / "a.dcm", RAMP))
    assert gray.dtype == np.float32 and gray.shape == RAMP.shape
    np.testing.assert_allclose(gray[0], RAMP[0] / RAMP.max(), atol=1e-6)


def test_monochrome1_is_inverted_so_bone_stays_bright(tmp_path):
    normal = read_dicom(write_dicom(tmp_path / "m2.dcm", RAMP))
    inverted = read_dicom(write_dicom(tmp_path / "m1.dcm", RAMP.max() - RAMP, photometric="MONOCHROME1"))
    np.testing.assert_allclose(inverted, normal, atol=1e-6)


def test_linear_window_follows_the_standard(tmp_path):
    gray = read_dicom(write_dicom(tmp_path / "w.dcm", RAMP, window=(2048, 1025)))
    values = RAMP[0].astype(float)
    expected = np.clip((values - 2047.5) / 1024 + 0.5, 0, 1)
    np.testing.assert_allclose(gray[0], expected, atol=1e-6)
    assert gray[0, 0] == 0 and gray[0, -1] == 1


def test_rescale_comes_before_the_window(tmp_path):
    gray = read_dicom(write_dicom(tmp_path / "r.dcm", RAMP, rescale=(2.0, -1000.0), window=(3096, 4097)))
    direct = read_dicom(write_dicom(tmp_path / "d.dcm", RAMP, window=(2048.25, 2049)))
    np.testing.assert_allclose(gray, direct, atol=1e-3)


def test_voi_lut_is_applied(tmp_path):
    lut = ((np.arange(4096) / 4095) ** 2 * 65535).round()
    gray = read_dicom(write_dicom(tmp_path / "l.dcm", RAMP, voi_lut=lut))
    np.testing.assert_allclose(gray[0], (RAMP[0] / 4095) ** 2, atol=1e-4)


def test_dicom_is_recognised_without_a_suffix(tmp_path):
    path = write_dicom(tmp_path / "IM0001", RAMP)
    assert is_dicom(path)
    (tmp_path / "notes").write_text("not an image")
    assert not is_dicom(tmp_path / "notes")


@pytest.mark.parametrize("make, fragment", [
    (lambda path: write_dicom(path, np.stack([RAMP, RAMP])), "holds 2 frames"),
    (lambda path: path.write_text("plain text"), "cannot be read as DICOM"),
    (lambda path: path.write_bytes(b""), "cannot be read as DICOM"),
], ids=["multi-frame", "text", "empty"])
def test_files_that_are_refused(tmp_path, make, fragment):
    path = tmp_path / "bad.dcm"
    make(path)
    with pytest.raises(CxrAgeError, match=fragment) as error:
        read_dicom(path)
    assert str(path) in str(error.value)
