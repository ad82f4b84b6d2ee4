"""DICOM as hospitals export it, through `cxr-age-predict`: pydicom's own 78 test files (compressed transfer
syntaxes, other modalities, broken headers, files without preamble or meta header) beside our synthetic DX
files; a folder run killed with SIGKILL and resumed from its CSV; the age the header records beside the
prediction."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from dicoms import PATIENT_ID, PATIENT_NAME, write_dicom
from helpers import assert_one_line_error, call_cli, guarded_environment

from cxr_age.cli import predict
from cxr_age.io.dicom import read_dicom

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
LOSSLESS = ("MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm",
            "MR_small_implicit.dcm", "MR_small_bigendian.dcm")
LOSSY = ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm")
BIRTH_DATE = "19500101"  # write_dicom's, an identifier: must reach no output


@pytest.fixture(scope="module")
def hospital_folder(tmp_path_factory, phantom_run):
    """pydicom's test files, and DX files of a phantom: frontal with PatientAge, frontal with only dates,
    lateral, and of the hand."""
    folder = tmp_path_factory.mktemp("hospital") / "export"
    shutil.copytree(PYDICOM_FILES, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    pixels = cv2.imread(str(phantom_run[0].parent / "images" / "phantom0000.png"), cv2.IMREAD_GRAYSCALE)
    stored = pixels.astype(np.uint16)
    write_dicom(folder / "ours_age.dcm", stored, bits=8, PatientAge="058Y", ViewPosition="PA", BodyPartExamined="CHEST")
    write_dicom(folder / "ours_dates.dcm", stored, bits=8, StudyDate="20100701", ViewPosition="AP")
    write_dicom(folder / "ours_lateral.dcm", stored, bits=8, ViewPosition="LL")
    write_dicom(folder / "ours_hand.dcm", stored, bits=8, BodyPartExamined="HAND")
    return folder


def _files(folder: Path) -> set[str]:
    return {str(path) for path in folder.rglob("*") if path.is_file()}


def _run(folder: Path, run_dir: Path, csv: Path, capsys, *flags: str):
    result = call_cli(predict.main, str(folder), "--run", str(run_dir), "--csv", str(csv), "--no-progress", *flags,
                      capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    predicted = pd.read_csv(csv).set_index("file")
    skipped = pd.read_csv(csv.with_name(f"{csv.stem}_skipped.csv")).set_index("file")
    assert not set(predicted.index) & set(skipped.index)
    assert set(predicted.index) | set(skipped.index) == _files(folder)  # every file predicted or skipped
    return result, predicted, skipped["reason"]


def test_only_frontal_chest_radiographs_get_an_age(hospital_folder, phantom_run, tmp_path, capsys):
    csv = tmp_path / "ages.csv"
    result, predicted, reasons = _run(hospital_folder, phantom_run[0], csv, capsys, "--age-from-header")
    by_name = {Path(file).name: reason for file, reason in reasons.items()}
    assert by_name["CT_small.dcm"].startswith("CT image (Modality); cxr-age reads frontal chest radiographs (CR/DX)")
    assert by_name["MR_small.dcm"].startswith("MR image (Modality)")
    assert by_name["rtdose_1frame.dcm"].startswith("RTDOSE image (Modality)")
    assert by_name["ours_lateral.dcm"].startswith("lateral view (ViewPosition LL)")
    assert by_name["ours_hand.dcm"].startswith("BodyPartExamined HAND")
    assert "--any-dicom reads it anyway" in by_name["CT_small.dcm"]
    ours = predicted.rename(index=lambda file: Path(file).name)
    assert ours.loc["ours_age.dcm", "header_age"] == 58
    assert ours.loc["ours_age.dcm", "age_gap"] == pytest.approx(ours.loc["ours_age.dcm", "predicted_age"] - 58)
    assert ours.loc["ours_dates.dcm", "header_age"] == pytest.approx(60.5, abs=0.01)  # 1950-01-01 to 2010-07-01
    assert "header_age_in_interval" in ours
    assert "header age 58.0, gap" in result.stdout
    outputs = [result.stdout, result.stderr] + [path.read_text() for path in tmp_path.iterdir()]
    for text in outputs:
        assert PATIENT_NAME not in text and PATIENT_ID not in text and BIRTH_DATE not in text


def test_any_dicom_reads_compressed_pairs_to_the_same_age(hospital_folder, phantom_run, tmp_path, capsys):
    csv = tmp_path / "any.csv"
    _, predicted, reasons = _run(hospital_folder, phantom_run[0], csv, capsys, "--any-dicom")
    ages = predicted["predicted_age"].rename(index=lambda file: Path(file).name)
    by_name = {Path(file).name: reason for file, reason in reasons.items()}
    assert len(ages) >= 45
    for name in LOSSLESS:  # JPEG 2000, JPEG-LS and RLE lossless, other byte orders: the same pixels
        np.testing.assert_array_equal(read_dicom(hospital_folder / name, any_dicom=True),
                                      read_dicom(hospital_folder / "MR_small.dcm", any_dicom=True))
        assert ages[name] == pytest.approx(ages["MR_small.dcm"], abs=1e-4), name
    reference = read_dicom(hospital_folder / "SC_rgb_dcmtk_+eb+cr.dcm", any_dicom=True)
    for name in LOSSY:  # lossy JPEG: within 0.05 of the [0, 1] range per pixel, 0.005 on average, ages within 1 year
        difference = np.abs(read_dicom(hospital_folder / name, any_dicom=True) - reference)
        assert difference.max() < 0.05 and difference.mean() < 0.005, name
        assert abs(ages[name] - ages["SC_rgb_dcmtk_+eb+cr.dcm"]) < 1.0, name
    assert by_name["badVR.dcm"] == "NumberOfFrames '1A' is not a number"
    assert "pylibjpeg-libjpeg, which is GPL-3.0" in by_name["JPEG-lossy.dcm"]
    assert by_name["rtplan.dcm"].startswith("cannot be read as DICOM: no pixel data")


def test_a_killed_folder_run_resumes_from_its_csv(phantom_run, tmp_path, capsys):
    folder = tmp_path / "studies"
    folder.mkdir()
    for i, source in enumerate(sorted((phantom_run[0].parent / "images").glob("*.png"))[:40]):
        shutil.copy(source, folder / f"study{i:03d}.png")
    csv = tmp_path / "ages.csv"
    args = [sys.executable, "-m", "cxr_age", "predict", str(folder), "--run", str(phantom_run[0]), "--csv",
            str(csv), "--batch-size", "2", "--no-progress"]
    process = subprocess.Popen(args, env=guarded_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while not (csv.is_file() and len(csv.read_text().splitlines()) >= 3):
            assert process.poll() is None and time.monotonic() < deadline, "no predictions written in time"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        process.kill()
    before = pd.read_csv(csv)
    assert 2 <= len(before) < 40
    with open(csv, "a") as handle:
        handle.write(f"{folder}/study039.png,41.")  # a row cut off mid-write: dropped on resume
    again = subprocess.run(args, env=guarded_environment(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{40 - len(before)} predicted, {len(before)} already in {csv} (not predicted again)" in again.stdout
    after = pd.read_csv(csv)
    assert sorted(after["file"]) == sorted(str(path) for path in folder.iterdir())
    assert after.iloc[: len(before)].equals(before)
    settings = json.loads((tmp_path / "ages_settings.json").read_text())
    assert settings["run"] == str(phantom_run[0].resolve())
    changed = call_cli(predict.main, *args[4:], "--coverage", "0.8", capsys=capsys)
    assert_one_line_error(changed, "holds predictions made with other settings (coverage)")
    assert pd.read_csv(csv).equals(after)
