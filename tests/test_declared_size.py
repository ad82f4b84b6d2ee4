"""The pixel count an image's header declares, read without decoding: what lets the web service refuse a
decompression bomb before any decoder allocates for it."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from dicoms import write_dicom

from cxr_age.io.declared_size import declared_pixels

IMAGE = np.random.default_rng(0).integers(0, 255, (37, 53), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_real_files_declare_their_size(suffix):
    _, encoded = cv2.imencode(suffix, IMAGE)
    assert declared_pixels(encoded.tobytes()) == 37 * 53


def test_a_progressive_jpeg_after_its_tables():
    _, encoded = cv2.imencode(".jpg", IMAGE, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 50])
    assert declared_pixels(encoded.tobytes()) == 37 * 53


def test_gif_and_dicom_frames(tmp_path):
    assert declared_pixels(b"GIF89a" + struct.pack("<HH", 60000, 60000) + b"\0" * 8) == 60000 * 60000
    write_dicom(tmp_path / "cine", np.zeros((3, 20, 30), np.uint16))
    assert declared_pixels((tmp_path / "cine").read_bytes()) == 3 * 20 * 30


@pytest.mark.parametrize("data", [b"", b"plain text", b"\xff\xd8\xff\xe0\x00", b"\x89PNG\r\n\x1a\n"],
                         ids=["empty", "text", "cut-jpeg", "cut-png"])
def test_unknown_or_cut_headers_are_left_to_the_decoder(data):
    assert declared_pixels(data) is None
