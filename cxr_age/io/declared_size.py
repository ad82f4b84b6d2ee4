"""The pixel count an image file's header declares, read from its first bytes without decoding it, so that a
file claiming enormous dimensions (a decompression bomb: a few kilobytes of PNG or JPEG that decode to
gigabytes) is refused before any decoder allocates for it. PNG (the IHDR chunk), JPEG (the first
start-of-frame marker), GIF (the logical screen), BMP (the info header) and DICOM (Rows x Columns x
NumberOfFrames, read by pydicom without the pixel data)."""

from __future__ import annotations

import io
import struct
import warnings

from cxr_age.io.dicom import DICOM_SUFFIXES

MAX_PIXELS = 64_000_000  # the default limit: a 12,000 x 5,300 film scan; a detector is at most about 4,300 x 4,300

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers: SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC), which share the range.
_JPEG_FRAMES = {0xC0 + n for n in range(16)} - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and the restart markers carry no length field


def _jpeg_pixels(data: bytes) -> int | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            position += 2
            continue
        if marker in _JPEG_FRAMES and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return height * width
        position += 2 + struct.unpack(">H", data[position + 2:position + 4])[0]
    return None


def _dicom_pixels(data: bytes) -> int | None:
    try:
        import pydicom
    except ImportError:
        return None  # the decoder will refuse the file with the extra to install
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        frames = int(header.get("NumberOfFrames", 1) or 1)
        return int(header.get("Rows", 0) or 0) * int(header.get("Columns", 0) or 0) * max(frames, 1)
    except Exception:  # noqa: BLE001 - a header pydicom cannot parse is the decoder's to refuse, with its reason
        return None


def declared_pixels(data: bytes, name: str = "") -> int | None:
    """The number of pixels (all frames) the header of the file `data` declares, or None where its format is
    not one of those above or its header cannot be parsed (the decoder then gives its own reason). `name`
    only serves to recognise a DICOM file without the 128-byte preamble by its suffix."""
    if data.startswith(PNG_MAGIC) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width * height
    if data.startswith(b"\xff\xd8"):
        return _jpeg_pixels(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width * height
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width) * abs(height)
    if data[128:132] == b"DICM" or name.lower().endswith(DICOM_SUFFIXES):
        return _dicom_pixels(data)
    return None
