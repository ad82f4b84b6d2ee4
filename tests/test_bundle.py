"""Handing a model over: a bundle exported from a run holds its model card and no patient-level data, loads by
path and by URL with its SHA-256 (and from the cache once the server is gone), refuses a changed byte in
one line, and its ONNX network predicts the Keras engine's ages without TensorFlow."""

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pandas as pd
import pytest
from helpers import FULL_SIZE, assert_one_line_error, call_cli, guarded_environment
from test_external import write_chexpert_phantoms

import cxr_age
from cxr_age.bundle.export import archive_bundle, export_bundle
from cxr_age.bundle.manifest import MANIFEST
from cxr_age.cli import evaluate, export, predict, report
from cxr_age.io.ages import GROUP_LABELS
from cxr_age.io.files import sha256_of
from cxr_age.paths import sample_image_dir

REAL_IMAGES = [*sorted(sample_image_dir().glob("*.png"))[:6], FULL_SIZE / "00000100_000.png"]  # one RGBA 1024 px


@pytest.fixture(scope="module")
def bundle(phantom_run, tmp_path_factory):
    return export_bundle(phantom_run[0], tmp_path_factory.mktemp("bundle") / "regress", onnx=True)


def test_the_bundle_holds_its_card_and_no_patient_data(bundle, phantom_run):
    run_dir = phantom_run[0]
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert manifest["kind"] == "cxr-age model bundle" and manifest["format"] == 1
    assert set(manifest["files"]) == {p.name for p in bundle.iterdir() if p.name != MANIFEST}
    assert {"model.keras", "model.onnx", "MODEL_CARD.md", "model_card.json", "preprocessing.json", "conformal.json",
            "metrics.json", "config.toml"} <= set(manifest["files"])
    card = json.loads((bundle / "model_card.json").read_text())
    assert {"model_details", "intended_use", "out_of_scope", "training_data", "evaluation",
            "performance_by_subgroup", "caveats"} <= set(card)
    assert card["training_data"]["images"]["train"] > 0 and card["training_data"]["datasets"] == "csv"
    test = card["evaluation"]["internal_test"]["model"]["mae"]
    assert test["ci95"][0] <= test["value"] <= test["ci95"][1]
    markdown = (bundle / "MODEL_CARD.md").read_text()
    assert "## Intended use" in markdown and "not a diagnostic device" in markdown
    assert "## Training data" in markdown and "95% CI" in markdown and "By true age group" in markdown
    splits = pd.concat([pd.read_csv(run_dir / f"{s}.csv", dtype=str) for s in ("train", "val", "test")])
    with zipfile.ZipFile(bundle / "model.keras") as network:  # the network's own JSON: its names and settings
        texts = [network.read(name).decode() for name in network.namelist() if name.endswith(".json")]
    texts += [path.read_text() for path in bundle.iterdir() if path.suffix in (".json", ".md", ".toml")]
    text = "\n".join(texts)
    assert not [image for image in splits["image"] if image in text]
    assert not [patient for patient in splits["patient_id"] if re.search(rf"\b{patient}\b", text)]
    assert str(run_dir.parent) not in text  # no local path of the training data


def test_a_bundle_loads_by_path_and_predicts_as_its_run(bundle, phantom_run):
    files = REAL_IMAGES[:3]
    from_run = cxr_age.AgeModel.load(phantom_run[0]).predict(files)
    model = cxr_age.AgeModel.load(bundle, sha256=sha256_of(bundle / MANIFEST))
    from_bundle = model.predict(files)
    np.testing.assert_allclose(from_bundle["predicted_age"], from_run["predicted_age"], atol=1e-4)
    np.testing.assert_allclose(from_bundle["interval_low"], from_run["interval_low"], atol=1e-4)
    assert model.metrics["splits"]["test"]["model"]["mae"]["value"] > 0
    with pytest.raises(cxr_age.CxrAgeError, match="does not match the expected SHA-256"):
        cxr_age.AgeModel.load(bundle, sha256="0" * 64)


@pytest.fixture
def served(bundle, tmp_path, monkeypatch):
    """The zipped bundle served by an HTTP server on 127.0.0.1 (stopped by the test), an empty cache."""
    archive, digest = archive_bundle(shutil.copytree(bundle, tmp_path / "site" / "regress"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CXR_AGE_CACHE", str(tmp_path / "cache"))
    yield f"http://127.0.0.1:{server.server_address[1]}/{archive.name}", digest, server
    server.shutdown()


def test_a_bundle_loads_by_url_with_its_hash_then_from_the_cache(served, tmp_path):
    url, digest, server = served
    with pytest.raises(cxr_age.CxrAgeError, match="does not match the expected SHA-256"):
        cxr_age.AgeModel.load(url, sha256="f" * 64)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # nothing half-downloaded kept
    first = cxr_age.AgeModel.load(url, sha256=digest).predict(REAL_IMAGES[:2])
    server.shutdown()
    again = cxr_age.AgeModel.load(url, sha256=digest).predict(REAL_IMAGES[:2])
    np.testing.assert_allclose(again["predicted_age"], first["predicted_age"])


def test_one_changed_byte_is_refused_in_one_line(bundle, tmp_path, capsys):
    altered = shutil.copytree(bundle, tmp_path / "altered")
    data = bytearray((altered / "model.keras").read_bytes())
    data[len(data) // 2] ^= 1
    (altered / "model.keras").write_bytes(bytes(data))
    result = call_cli(predict.main, str(REAL_IMAGES[0]), "--model", str(altered), "--no-progress", capsys=capsys)
    assert_one_line_error(result, "model.keras", "does not match the SHA-256")


ONNX_WITHOUT_TENSORFLOW = """
import json, sys
from cxr_age.age_model import AgeModel
model = AgeModel.load(sys.argv[1], engine="onnx")
frame = model.predict(sys.argv[2:], tta=4)
print(json.dumps({"ages": frame["predicted_age"].tolist(), "low": frame["interval_low"].tolist(),
                  "sd": frame["tta_sd"].tolist(), "mean": frame["tta_mean_age"].tolist(),
                  "tensorflow": any(name.split(".")[0] == "tensorflow" for name in sys.modules)}))
"""


def test_the_onnx_engine_gives_the_keras_ages_without_tensorflow(bundle):
    files = [str(path) for path in REAL_IMAGES]
    keras_ages = cxr_age.AgeModel.load(bundle).predict(files, tta=4)
    result = subprocess.run([sys.executable, "-c", ONNX_WITHOUT_TENSORFLOW, str(bundle), *files],
                            capture_output=True, text=True, env=guarded_environment(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    onnx = json.loads(result.stdout.strip().splitlines()[-1])
    assert not onnx["tensorflow"]
    difference = np.abs(np.array(onnx["ages"]) - keras_ages["predicted_age"].to_numpy())
    print(f"onnx - keras ages on {len(files)} real images: max {difference.max():.5f} years")
    assert difference.max() <= 0.05
    np.testing.assert_allclose(onnx["low"], keras_ages["interval_low"], atol=0.05)
    # the test-time spread, over the same four views in both engines (the views are made in NumPy and OpenCV)
    np.testing.assert_allclose(onnx["mean"], keras_ages["tta_mean_age"], atol=0.05)
    np.testing.assert_allclose(onnx["sd"], keras_ages["tta_sd"], atol=0.05)
    assert (keras_ages["tta_sd"] > 0).all()


SERVED_WITHOUT_TENSORFLOW = """
import json, sys
from fastapi.testclient import TestClient
from cxr_age.age_model import AgeModel
from cxr_age.serve.app import create_app
from cxr_age.serve.service import AgeService
service = AgeService(AgeModel.load(sys.argv[1], engine="onnx"))
service.warm()
with TestClient(create_app(service)) as client:
    files = [("files", (path, open(path, "rb").read())) for path in sys.argv[2:]]
    answer = client.post("/api/predict", files=files, data={"saliency": "1"}).json()
    model = client.get("/api/model").json()
print(json.dumps({"ages": [row["predicted_age"] for row in answer["predictions"]], "engine": model["engine"],
                  "maps": model["saliency"] or any("saliency_png" in row for row in answer["predictions"]),
                  "tensorflow": any(name.split(".")[0] == "tensorflow" for name in sys.modules)}))
"""


def test_the_web_service_serves_the_onnx_engine_without_tensorflow(bundle):
    """`cxr-age-serve BUNDLE --engine onnx`'s application, through FastAPI's test client, in a process that
    never imports TensorFlow: the Keras engine's ages, and no saliency (which needs Keras)."""
    files = [str(path) for path in REAL_IMAGES[:3]]
    keras_ages = cxr_age.AgeModel.load(bundle).predict(files, tta=4)["predicted_age"].to_numpy()
    result = subprocess.run([sys.executable, "-c", SERVED_WITHOUT_TENSORFLOW, str(bundle), *files],
                            capture_output=True, text=True, env=guarded_environment(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["engine"] == "onnx" and not served["tensorflow"] and not served["maps"]
    np.testing.assert_allclose(served["ages"], keras_ages, atol=0.05)


def test_export_and_predict_by_command(phantom_run, bundle, tmp_path, capsys):
    out = tmp_path / "shared"
    result = call_cli(export.main, str(phantom_run[0]), "--out", str(out), "--zip", capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert "MODEL_CARD.md" in result.stdout and (tmp_path / "shared.zip").is_file()
    assert sha256_of(tmp_path / "shared.zip") in result.stdout
    result = call_cli(predict.main, str(REAL_IMAGES[0]), "--model", str(out), "--json", "--no-progress", capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert 0 <= json.loads(result.stdout)["predictions"][0]["predicted_age"] <= 90
    for engine in ("keras", "onnx"):
        spread = call_cli(predict.main, *map(str, REAL_IMAGES[:3]), "--model", str(bundle), "--engine", engine,
                          "--tta", "4", "--json", "--no-progress", capsys=capsys)
        assert spread.returncode == 0, spread.stderr
        rows = json.loads(spread.stdout)["predictions"]
        assert len(rows) == 3 and all(row["tta_sd"] >= 0 and row["tta_views"] == 4 for row in rows), engine
    no_onnx = call_cli(predict.main, str(REAL_IMAGES[0]), "--model", str(out), "--engine", "onnx", capsys=capsys)
    assert_one_line_error(no_onnx, "holds no model.onnx")
    assert_one_line_error(call_cli(export.main, str(phantom_run[0]), "--out", str(out), capsys=capsys),
                          "already exists")


def test_a_bundle_is_validated_on_another_dataset_and_reported(bundle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = write_chexpert_phantoms(tmp_path)
    result = call_cli(evaluate.main, str(bundle), "--csv", str(table), capsys=capsys)
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "runs" / "external").glob("chexpert-*")  # never inside the bundle
    assert not (bundle / "external").exists()
    external = json.loads((folder / "metrics.json").read_text())
    mae = external["splits"]["external"]["model"]["mae"]
    assert mae["value"] < external["splits"]["external"]["baseline"]["mae"]
    assert 0 <= external["uncertainty"]["coverage"]["value"] <= 1  # the intervals as fitted on the run's val
    assert_one_line_error(call_cli(evaluate.main, str(bundle), capsys=capsys), "is a bundle", "--csv")
    result = call_cli(report.main, str(bundle), capsys=capsys)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / f"report-{bundle.name}.html").read_text()
    assert "Model card" in page and "not a diagnostic device" in page


@pytest.mark.long
def test_the_onnx_classifier_gives_the_keras_probabilities_and_sets(classify_run, tmp_path):
    bundle = export_bundle(classify_run.run_dir, tmp_path / "classify", onnx=True)
    files = REAL_IMAGES[:4]
    keras_frame = cxr_age.AgeModel.load(bundle).predict(files)
    onnx_frame = cxr_age.AgeModel.load(bundle, engine="onnx").predict(files)
    columns = [f"p_{label}" for label in GROUP_LABELS]
    np.testing.assert_allclose(onnx_frame[columns], keras_frame[columns], atol=1e-4)
    assert onnx_frame["prediction_set"].tolist() == keras_frame["prediction_set"].tolist()
