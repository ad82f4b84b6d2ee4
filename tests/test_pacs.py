"""The PACS tools against the real thing (cxr_age.pacs): a real Orthanc with its DICOMweb plugin and HTTP
authentication (`orthanc_server`), dcmtk's `storescu`/`echoscu` as the modality, dicom3tools' `dciodvfy` as the
judge of the reports. Where those are not installed the tests that need them are skipped with the reason (CI
installs them and requires them). The model is the phantom regressor shared by the tests (`phantom_run`), and
the images are phantoms written as DX For Presentation, so that the ages are spread and comparable."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicoms import PATIENT_ID, PATIENT_NAME, chest_instance, write_dicom
from helpers import assert_one_line_error, call_cli, free_ports, guarded_environment
from orthanc_server import PASSWORD, USER, OrthancServer, dcmtk, require_tools
from phantoms import phantom
from pydicom.uid import generate_uid

from cxr_age.age_model import AgeModel
from cxr_age.cli.pacs import main as pacs_main
from cxr_age.cli.predict import main as predict_main
from cxr_age.pacs.age_report import AGE, Algorithm, age_report, read_age_report
from cxr_age.pacs.assessment import AgeReader
from cxr_age.pacs.delivery import Retry, StoreScu
from cxr_age.pacs.dicomweb import PASSWORD as PASSWORD_VARIABLE
from cxr_age.pacs.dicomweb import USER as USER_VARIABLE
from cxr_age.pacs.eligibility import ineligible
from cxr_age.pacs.ledger import Ledger
from cxr_age.pacs.listener import Listener, ListenSettings

hd = pytest.importorskip("highdicom")
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SECRETS = (PATIENT_NAME, PATIENT_NAME.replace("^", " "), PATIENT_ID, "19500101")


def chest_cohort(folder: Path, n: int, seed: int) -> dict[str, Path]:
    """`n` frontal chest instances in one study (one RLE-compressed, one CR), and a CT, a lateral and a
    derived image beside them; keyed chest0.. and ct, lateral, derived."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    study, series = generate_uid(), generate_uid()
    files = {}
    for i, age in enumerate(rng.uniform(25, 80, n)):
        tags = {"Modality": "CR", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.1"} if i == 1 else {}
        files[f"chest{i}"] = chest_instance(folder / f"chest{i}.dcm", phantom(age, rng), study, series, **tags)
    compressed = pydicom.dcmread(files["chest0"])
    compressed.compress(pydicom.uid.RLELossless)
    compressed.save_as(files["chest0"])
    others = {"lateral": {"ViewPosition": "LL"}, "derived": {"ImageType": ["DERIVED", "SECONDARY"]},
              "ct": {"Modality": "CT", "SOPClassUID": CT_IMAGE}}
    for name, tags in others.items():
        files[name] = chest_instance(folder / f"{name}.dcm", phantom(50, rng), study, generate_uid(), **tags)
    ct = pydicom.dcmread(files["ct"])
    ct.file_meta.MediaStorageSOPClassUID = CT_IMAGE
    ct.save_as(files["ct"])
    return files


@pytest.fixture
def orthanc(tmp_path):
    require_tools("storescu", "echoscu")
    server = OrthancServer(tmp_path / "orthanc")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv(USER_VARIABLE, USER)
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)


def reports_in(orthanc: OrthancServer) -> dict[str, pydicom.Dataset]:
    """The SRs stored in Orthanc, read back, keyed by their source image's SOP Instance UID."""
    found = {}
    for tags in orthanc.instances("SR"):
        dataset = pydicom.dcmread(io.BytesIO(orthanc.file(tags["SOPInstanceUID"])))
        found[read_age_report(dataset).source_uid] = dataset
    return found


def predicted_ages(run_dir: Path, files: list[Path], capsys) -> dict[str, float]:
    """cxr-age-predict's ages of the files, keyed by their SOP Instance UID."""
    result = call_cli(predict_main, *map(str, files), "--run", str(run_dir), "--json", capsys=capsys)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["predictions"]
    return {str(pydicom.dcmread(row["file"]).SOPInstanceUID): row["predicted_age"] for row in rows}


def assert_no_patient(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, secret


def test_pull_stores_one_report_per_chest_radiograph_and_a_rerun_adds_none(phantom_run, orthanc, credentials,
                                                                           tmp_path, capsys):
    run_dir, _ = phantom_run
    files = chest_cohort(tmp_path / "dicom", 4, seed=1)
    for path in files.values():
        orthanc.upload(path)
    ledger = tmp_path / "ledger.csv"
    args = [orthanc.dicomweb, "--model", str(run_dir), "--store-sr", "--csv", str(ledger), "--no-progress"]
    first = call_cli(pacs_main, *args, capsys=capsys)
    assert first.returncode == 0, first.stderr
    assert "4 predicted, 4 report(s) stored; 3 refused" in first.stdout

    reports = reports_in(orthanc)
    chest = [path for name, path in files.items() if name.startswith("chest")]
    expected = predicted_ages(run_dir, chest, capsys)
    assert set(reports) == set(expected)  # one report per chest image; none for the CT, lateral or derived
    for source, dataset in reports.items():
        report = read_age_report(dataset)
        assert abs(report.predicted_age - expected[source]) <= 0.05
        assert report.interval_low <= report.predicted_age <= report.interval_high
        group = hd.sr.Comprehensive3DSR.from_dataset(dataset).content.get_image_measurement_groups()[0]
        assert group.get_measurements(name=AGE)[0].unit.value == "a"
        assert dataset.VerificationFlag == "UNVERIFIED" and "not for diagnosis" in dataset.SeriesDescription
        assert source in [uid for _, _, uid, _ in hd.sr.Comprehensive3DSR.from_dataset(dataset).get_evidence()]

    rows = pd.read_csv(ledger, dtype=str, keep_default_na=False)
    reasons = dict(zip(rows["sop_instance_uid"], rows["reason"]))
    assert "not PA or AP" in reasons[str(pydicom.dcmread(files["lateral"]).SOPInstanceUID)]
    assert "not ORIGINAL" in reasons[str(pydicom.dcmread(files["derived"]).SOPInstanceUID)]
    assert "CT modality" in reasons[str(pydicom.dcmread(files["ct"]).SOPInstanceUID)]

    second = call_cli(pacs_main, *args, capsys=capsys)
    assert second.returncode == 0, second.stderr
    assert "0 predicted, 0 report(s) stored" in second.stdout and "7 done by an earlier run" in second.stdout
    assert len(orthanc.instances("SR")) == 4
    assert_no_patient(first.stdout, first.stderr, second.stdout, second.stderr, ledger.read_text())


def test_pull_refuses_bad_credentials_and_urls_in_one_line(phantom_run, orthanc, monkeypatch, tmp_path, capsys):
    run_dir, _ = phantom_run
    monkeypatch.setenv(USER_VARIABLE, USER)
    monkeypatch.setenv(PASSWORD_VARIABLE, "wrong-password-123")
    args = ["--model", str(run_dir), "--csv", str(tmp_path / "ledger.csv"), "--no-progress"]
    refused = call_cli(pacs_main, orthanc.dicomweb, *args, capsys=capsys)
    line = assert_one_line_error(refused, "HTTP 401", USER_VARIABLE)
    assert "wrong-password-123" not in line
    in_url = orthanc.dicomweb.replace("http://", f"http://{USER}:secret@")
    assert_one_line_error(call_cli(pacs_main, in_url, *args, capsys=capsys), "credentials", "environment")
    closed = f"http://127.0.0.1:{free_ports(1)[0]}/dicom-web"
    assert_one_line_error(call_cli(pacs_main, closed, *args, capsys=capsys), "cannot reach", "ConnectionError")


def test_report_passes_dciodvfy_and_reads_back_from_an_anonymised_image(tmp_path):
    source = write_dicom(tmp_path / "anonymous.dcm", np.full((32, 32), 900, np.uint16), ViewPosition="AP",
                         StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid())
    dataset = pydicom.dcmread(source)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate"):  # anonymised: the Type 2 fields are gone
        delattr(dataset, keyword)
    prediction = pd.Series({"predicted_age": 61.23456, "interval_low": 50.0, "interval_high": 72.5,
                            "p_60-70": 0.4, "p_70-80": 0.35})
    algorithm = Algorithm("0.1.0", "ab" * 32, "regress densenet169 512 px")
    report = age_report(dataset, prediction, algorithm)
    assert report.SOPInstanceUID == age_report(dataset, prediction, algorithm).SOPInstanceUID  # a rerun: same UID
    path = tmp_path / "report.dcm"
    report.save_as(path, enforce_file_format=True)
    back = read_age_report(pydicom.dcmread(path))
    assert (back.predicted_age, back.interval_low, back.interval_high) == (61.235, 50.0, 72.5)
    assert back.source_uid == dataset.SOPInstanceUID and back.model_sha256 == "ab" * 32
    assert read_age_report(dataset) is None  # not a report
    if dcmtk("dciodvfy") is None:
        if os.environ.get("CXR_AGE_REQUIRE_PACS"):
            pytest.fail("dciodvfy (dicom3tools) is not installed")
        pytest.skip("needs dciodvfy (apt install dicom3tools)")
    verdict = subprocess.run([dcmtk("dciodvfy"), str(path)], capture_output=True, text=True)
    errors = [line for line in (verdict.stdout + verdict.stderr).splitlines() if line.startswith("Error")]
    assert not errors, errors


@pytest.mark.parametrize("tags, reason", [
    ({}, None),
    ({"Modality": "CR", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.1"}, None),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1.1.1"}, "For Processing"),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.88.34", "Modality": "SR"}, "structured report"),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "Modality": "OT"}, "secondary capture"),
    ({"ViewPosition": "LL"}, "ViewPosition LL"),
    ({"ViewPosition": ""}, "no ViewPosition"),
    ({"BodyPartExamined": "KNEE"}, "KNEE"),
    ({"ImageType": ["DERIVED", "PRIMARY"]}, "not ORIGINAL"),
    ({"NumberOfFrames": "3"}, "3 frames"),
    ({"Rows": 10000, "Columns": 9000}, "oversized"),
])
def test_eligibility_names_each_reason(tags, reason):
    dataset = pydicom.Dataset()
    for keyword, value in {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1.1", "Modality": "DX", "ViewPosition": "PA",
                           "BodyPartExamined": "CHEST", "ImageType": ["ORIGINAL", "PRIMARY"], "Rows": 2048,
                           "Columns": 2048, **tags}.items():
        setattr(dataset, keyword, value)
    found = ineligible(dataset)
    assert (found is None) if reason is None else (reason in found), found


def test_ledger_resumes_and_a_later_row_wins(tmp_path):
    path = tmp_path / "ledger.csv"
    ledger = Ledger(path, "m1")
    ledger.record([{"sop_instance_uid": "1.1", "status": "predicted", "report_stored": False},
                   {"sop_instance_uid": "1.2", "status": "ineligible", "reason": "ViewPosition LL, not PA or AP"}])
    again = Ledger(path, "m1")
    assert again.done("1.1", want_report=False) and not again.done("1.1", want_report=True)
    assert again.done("1.2", want_report=True) and not again.done("1.3", want_report=False)
    again.record([{"sop_instance_uid": "1.1", "status": "predicted", "report_stored": True}])
    assert Ledger(path, "m1").done("1.1", want_report=True)
    assert not Ledger(path, "another model").done("1.1", want_report=False)
    other = tmp_path / "other.csv"
    other.write_text("image,age\na.png,3\n")
    with pytest.raises(Exception, match="not a cxr-age-pacs ledger"):
        Ledger(other, "m1")
    assert other.read_text() == "image,age\na.png,3\n"


def storescu(port: int, calling: str, *files: Path) -> subprocess.CompletedProcess:
    command = [dcmtk("storescu"), "--propose-rle", "-aet", calling, "-aec", "CXRAGE", "127.0.0.1", str(port)]
    return subprocess.run([*command, *map(str, files)], capture_output=True, text=True, timeout=60)


def wait_until(condition, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def test_listener_forwards_reports_refuses_a_wrong_ae_and_stops_cleanly(phantom_run, orthanc, tmp_path):
    run_dir, _ = phantom_run
    files = chest_cohort(tmp_path / "dicom", 2, seed=2)
    corrupt = pydicom.dcmread(files["chest1"])
    corrupt.SOPInstanceUID = generate_uid()
    corrupt.PixelData = corrupt.PixelData[:100]
    corrupt.save_as(tmp_path / "corrupt.dcm")
    port = free_ports(1)[0]
    out, err = tmp_path / "listen.out", tmp_path / "listen.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        listener = subprocess.Popen(
            [sys.executable, "-m", "cxr_age", "listen", "--port", str(port), "--model", str(run_dir), "--forward",
             orthanc.node, "--allow", "MODALITY", "--study-timeout", "1", "--dead-letters", str(tmp_path / "dead")],
            stdout=stdout, stderr=stderr, env=guarded_environment())
    try:
        assert wait_until(lambda: "listening as CXRAGE" in out.read_text(), 180), err.read_text()
        echo = [dcmtk("echoscu"), "-aet", "MODALITY", "-aec", "CXRAGE", "127.0.0.1", str(port)]
        assert subprocess.run(echo).returncode == 0
        assert storescu(port, "INTRUDER", files["chest0"]).returncode != 0  # a calling AE not in --allow
        sent = storescu(port, "MODALITY", files["chest0"], files["chest1"], files["lateral"], tmp_path / "corrupt.dcm")
        assert sent.returncode == 0, sent.stderr
        reports = orthanc.wait_for("SR", 2)
        assert len(reports) == 2
        assert {read_age_report(pydicom.dcmread(io.BytesIO(orthanc.file(r["SOPInstanceUID"])))).source_uid
                for r in reports} == {str(pydicom.dcmread(files[k]).SOPInstanceUID) for k in ("chest0", "chest1")}
    finally:
        listener.send_signal(signal.SIGTERM)
        code = listener.wait(timeout=120)
    log = out.read_text() + err.read_text()
    assert code == 0, log
    assert "rejected: not in --allow" in log and "ViewPosition LL, not PA or AP" in log
    assert "cannot decode the DICOM pixel data" in log and "stopped:" in log
    assert_no_patient(log)


def test_listener_keeps_undeliverable_reports_and_delivers_them_once_the_pacs_is_back(phantom_run, orthanc, tmp_path):
    run_dir, _ = phantom_run
    require_tools("storescu")
    files = chest_cohort(tmp_path / "dicom", 1, seed=3)
    dead = tmp_path / "dead"
    settings = ListenSettings(port=free_ports(1)[0], dead_letters=dead, host="127.0.0.1", study_timeout=0.5,
                              redeliver_every=1.0, retry=Retry(attempts=2, first_wait=0.2))
    listener = Listener(AgeReader(AgeModel.load(run_dir)), StoreScu(orthanc.node, "CXRAGE", timeout=5), settings)
    orthanc.stop()
    listener.start()
    try:
        assert storescu(settings.port, "MODALITY", files["chest0"]).returncode == 0
        assert wait_until(lambda: list(dead.glob("*.dcm")), 120)
        assert stat.S_IMODE(dead.stat().st_mode) == 0o700
        assert "did not accept an association" in next(dead.glob("*.reason.txt")).read_text()
        orthanc.start()
        assert wait_until(lambda: not list(dead.glob("*.dcm")), 120)
        assert len(orthanc.instances("SR")) == 1
    finally:
        listener.stop()
    assert listener.counts["received"] == 1 and listener.counts["reports kept as dead letters"] == 1
