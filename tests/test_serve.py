"""`cxr-age-serve`: a real server (the command, on a free port, with small real runs) answers PNG, JPEG and
DICOM with the ages `cxr-age-predict` gives, broken and hostile files with per-file errors, over-limit
uploads with 413 and a full queue with 503, holds 20 concurrent clients, and never logs a patient's name;
its page is driven in a real browser (Debian's chromium through Selenium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from dicoms import PATIENT_ID, PATIENT_NAME, write_dicom
from helpers import assert_one_line_error, call_cli, guarded_environment

from cxr_age.cli import predict, serve
from cxr_age.paths import sample_image_dir

GROUPS = [f"p_{label}" for label in ("0-10", "10-20", "20-30", "30-40", "40-50", "50-60", "60-70", "70-80", "80-90")]


class Server:
    """`python -m cxr_age serve ARGS --port 0` in its own process, its output (its whole log) in a file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.handle = open(log, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "cxr_age", "serve", *args, "--port", "0"],
                                        stdout=self.handle, stderr=subprocess.STDOUT, env=guarded_environment())
        deadline = time.monotonic() + 180
        while not (found := re.search(r"serving (http://\S+/)", log.read_text())):
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        self.url = found.group(1)

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.handle.close()
        return self.log.read_text()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width x height` pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def studies(phantom_run, tmp_path_factory) -> Path:
    """A real NIH PNG (from the embedded sample), a phantom as PNG, one as JPEG, and one as DX DICOM
    with a patient's name and age in its header."""
    run_dir, _ = phantom_run
    folder = tmp_path_factory.mktemp("served-studies")
    images = sorted((run_dir.parent / "images").glob("*.png"))
    shutil.copy(images[0], folder)
    shutil.copy(sample_image_dir() / "00000075_000.png", folder)
    pixels = cv2.imread(str(images[2]), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(folder / "study.jpg"), pixels)
    write_dicom(folder / "study.dcm", pixels.astype(np.uint16), bits=8, PatientAge="058Y")
    return folder


@pytest.fixture(scope="module")
def server(phantom_run, classify_run, tmp_path_factory):
    run_dir, _ = phantom_run
    log = tmp_path_factory.mktemp("server") / "server.log"
    served = Server([str(run_dir), "--classify-model", str(classify_run.run_dir), "--max-file-mb", "1",
                     "--max-request-mb", "3"], log)
    yield served
    served.stop()


def declared_length_answer(url: str, length: int) -> bytes:
    """The status line of a request that declares `length` bytes of body and sends none of it: answered
    from its headers alone."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n"
                           "Content-Type: multipart/form-data; boundary=b\r\n\r\n".encode())
        return connection.recv(200)


def post(url: str, files: list[tuple[str, bytes]], **fields: str) -> httpx.Response:
    return httpx.post(url + "api/predict", files=[("files", (name, data)) for name, data in files], data=fields,
                      timeout=120)


def test_a_mixed_request_gets_the_ages_of_cxr_age_predict(server, studies, phantom_run, classify_run, capsys):
    run_dir, _ = phantom_run
    files = [(path.name, path.read_bytes()) for path in sorted(studies.iterdir())]
    hostile = [("corrupt.png", b"\x89PNG\r\n\x1a\n this is not a picture"), ("empty.png", b""),
               ("../../x.png", files[0][1]), ("bomb.png", png_declaring(100_000, 100_000))]
    response = post(server.url, files + hostile)
    assert response.status_code == 200, response.text
    answer = response.json()
    served = {row["file"]: row for row in answer["predictions"]}

    expected = call_cli(predict.main, str(studies), "--run", str(run_dir), "--classify-run", str(classify_run.run_dir),
                        "--json", "--no-progress", "--age-from-header", capsys=capsys)
    assert expected.returncode == 0, expected.stderr
    for row in json.loads(expected.stdout)["predictions"]:
        name = Path(row["file"]).name
        assert served[name]["predicted_age"] == pytest.approx(row["predicted_age"], abs=0.05), name
        assert [served[name][g] for g in GROUPS] == pytest.approx([row[g] for g in GROUPS], abs=1e-3)
    assert served["study.dcm"]["header_age"] == 58
    assert served["study.dcm"]["age_gap"] == pytest.approx(served["study.dcm"]["predicted_age"] - 58)
    assert served["../../x.png"]["predicted_age"] == pytest.approx(served[files[0][0]]["predicted_age"], abs=1e-4)
    assert not (Path.cwd().parent / "x.png").exists()
    reasons = {entry["file"]: entry["reason"] for entry in answer["skipped"]}
    assert sorted(reasons) == ["bomb.png", "corrupt.png", "empty.png"]
    assert "empty" in reasons["empty.png"] and "refused before decoding" in reasons["bomb.png"]
    assert all("/" not in reason.split(":")[0] for reason in reasons.values()), reasons  # no server path
    assert answer["regressor"]["test_mae"]["baseline"] > 0 and answer["classifier"]["task"] == "classify"
    assert httpx.get(server.url + "healthz").json()["status"] == "ok"


def test_over_the_limits_is_413_and_the_server_goes_on(server, studies):
    too_big = ("big.png", b"\0" * (2**20 + 1))
    assert post(server.url, [too_big]).status_code == 413
    assert "1 MiB" in post(server.url, [too_big]).json()["detail"]
    assert declared_length_answer(server.url, 4 * 2**20).startswith(b"HTTP/1.1 413")
    assert "more than 100 files" in post(server.url, [(f"{i}.png", b"x") for i in range(101)]).json()["detail"]
    assert httpx.post(server.url + "api/predict", json={"files": []}).status_code == 400
    assert post(server.url, [("study.jpg", (studies / "study.jpg").read_bytes())]).status_code == 200


def test_twenty_concurrent_clients_without_an_error(server, studies):
    files = [(path.name, path.read_bytes()) for path in sorted(studies.iterdir())]

    def client(i: int) -> tuple[int, int]:
        response = post(server.url, [files[i % 4], files[(i + 1) % 4]])
        return response.status_code, len(response.json().get("predictions", []))

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(client, range(20)))
    assert answers == [(200, 2)] * 20


def test_the_page_api_description_and_a_log_without_patient_identifiers(server, studies):
    page = httpx.get(server.url)
    assert page.status_code == 200 and 'type="file"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(server.url + "static/app.js").status_code == 200
    model = httpx.get(server.url + "api/model").json()
    assert model["regressor"]["task"] == "regress" and model["limits"]["file_bytes"] == 2**20
    assert "/api/predict" in httpx.get(server.url + "openapi.json").json()["paths"]
    response = post(server.url, [("Doe_Jane.dcm", (studies / "study.dcm").read_bytes())], saliency="1")
    assert response.json()["predictions"][0]["saliency_png"].startswith("data:image/png;base64,")
    for text in (server.log.read_text(), response.text):
        assert PATIENT_NAME not in text and PATIENT_ID not in text and "Doe^" not in text
    assert "Doe_Jane" not in server.log.read_text()  # file names are not logged either


def test_test_time_spread_and_options_exactly_as_described(server, studies):
    """`tta=4` gives each row its spread beside the interval; a value or field the OpenAPI description does
    not allow is a 400, never silently ignored."""
    study = [("study.jpg", (studies / "study.jpg").read_bytes())]
    row = post(server.url, study, tta="4").json()["predictions"][0]
    assert row["tta_views"] == 4 and row["tta_sd"] > 0 and "interval_low" in row
    assert "tta_sd" not in post(server.url, study).json()["predictions"][0]
    for fields, word in (({"saliency": "yes"}, "saliency"), ({"tta": "9"}, "tta"), ({"tta": "two"}, "tta"),
                         ({"coverage": "0.5"}, "unknown form field")):
        refused = post(server.url, study, **fields)
        assert refused.status_code == 400 and word in refused.json()["detail"], fields
    body = httpx.get(server.url + "openapi.json").json()["paths"]["/api/predict"]["post"]["requestBody"]
    schema = body["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["files"] and schema["properties"]["files"]["minItems"] == 1
    assert schema["properties"]["tta"]["maximum"] == 8 and schema["properties"]["saliency"]["enum"] == ["0", "1"]


def test_schemathesis_finds_no_failure_from_the_openapi_description(server, tmp_path):
    """Every check of schemathesis (server errors, status codes, schema conformance, schema-valid requests
    accepted and invalid ones refused), fuzzing from the description the server publishes, seeded."""
    command = [str(Path(sys.executable).parent / "st"), "run", server.url + "openapi.json", "--checks", "all",
               "--max-examples", "15", "--workers", "1", "--seed", "1", "--generation-deterministic",
               "--report-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env=guarded_environment(), timeout=300,
                            cwd=tmp_path)  # schemathesis keeps a cache in the working folder, not in the checkout
    assert result.returncode == 0, result.stdout[-4000:]
    assert "No issues found" in result.stdout


def test_a_full_queue_answers_503(phantom_run, studies):
    """Two requests wait in a two-second batching window; the third finds the queue full. Every request's
    private folder is gone once it is answered."""
    import uvicorn

    from cxr_age.age_model import AgeModel
    from cxr_age.serve.app import create_app
    from cxr_age.serve.limits import Batching, ServerLimits
    from cxr_age.serve.service import AgeService

    service = AgeService(AgeModel.load(phantom_run[0]))
    app = create_app(service, ServerLimits(batching=Batching(2.0, 32, 2)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/"
    image = [("study.jpg", (studies / "study.jpg").read_bytes())]
    try:
        with ThreadPoolExecutor(2) as pool:
            waiting = [pool.submit(post, url, image) for _ in range(2)]
            while httpx.get(url + "healthz").json()["in_progress"] < 2:
                time.sleep(0.05)
            refused = post(url, image)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert [future.result().status_code for future in waiting] == [200, 200]
        assert post(url, image).status_code == 200
        assert service.root.stat().st_mode & 0o777 == 0o700 and not list(service.root.iterdir())  # emptied
    finally:
        server.should_exit = True
        thread.join(30)


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def test_a_browser_uploads_a_file_and_reads_the_age(server, studies, tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        missing = "needs Debian's chromium and chromedriver: apt install chromium chromium-driver"
        (pytest.fail if os.environ.get("CXR_AGE_REQUIRE_BROWSER") else pytest.skip)(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.get(server.url)
        WebDriverWait(browser, 30).until(lambda b: "trained on" in b.find_element(By.ID, "models").text)
        browser.find_element(By.ID, "files").send_keys(str(studies / "study.dcm"))
        Select(browser.find_element(By.ID, "tta")).select_by_value("4")
        browser.find_element(By.ID, "predict").click()
        cell = WebDriverWait(browser, 60).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, "#results tbody tr[data-file='study.dcm'] td.age"))[0]
        shown = float(cell.text.split()[0])
        spread = browser.find_element(By.CSS_SELECTOR, "#results tbody tr[data-file='study.dcm'] td.tta-column")
        shown_spread = float(spread.text)
        browser.save_screenshot(str(tmp_path / "page.png"))
    finally:
        browser.quit()
    expected = post(server.url, [("study.dcm", (studies / "study.dcm").read_bytes())], tta="4").json()
    expected = expected["predictions"][0]
    assert shown == pytest.approx(expected["predicted_age"], abs=0.05)
    assert shown_spread == pytest.approx(expected["tta_sd"], abs=0.01)
    assert cv2.imread(str(tmp_path / "page.png")).shape[1] == 1280


def test_a_file_that_breaks_its_batch_is_the_only_one_skipped(phantom_run, studies, monkeypatch, tmp_path):
    """A failure no decoder foresaw (here injected: the network raises on an all-white image) fails the batch
    of several requests; each file is then predicted alone, and only the one at fault is skipped."""
    from cxr_age.age_model import AgeModel
    from cxr_age.serve.service import AgeService
    from cxr_age.serve.uploads import Upload

    regressor = AgeModel.load(phantom_run[0])
    outputs = regressor.outputs

    def failing_on_white(inputs, compiled=False):
        if (np.asarray(inputs) >= 1).all(axis=(1, 2, 3)).any():
            raise RuntimeError("injected failure")
        return outputs(inputs, compiled)

    monkeypatch.setattr(regressor, "outputs", failing_on_white)
    service = AgeService(regressor)
    _, white = cv2.imencode(".png", np.full((64, 64), 255, np.uint8))
    good, bad = (service.store([Upload(name, data)], False)[0] for name, data in
                 (("study.jpg", (studies / "study.jpg").read_bytes()), ("white.png", white.tobytes())))
    answers = service.predict_jobs([good, bad])
    assert [len(answer.rows) for answer in answers] == [1, 0]
    assert service.labelled(bad, answers[1])[1] == [
        {"file": "white.png", "reason": "could not be predicted: RuntimeError: injected failure"}]
    service.close()
    assert not service.root.exists()


def test_bad_starts_give_one_line(phantom_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(call_cli(serve.main, capsys=capsys), "no finished regress run", "cxr-age-train regress")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert_one_line_error(call_cli(serve.main, str(phantom_run[0]), "--port", port, capsys=capsys),
                              f"cannot listen on 127.0.0.1:{port}", "--port")
    assert_one_line_error(call_cli(serve.main, "--queue", "0", capsys=capsys), "--queue")
