"""Bad input, command by command: each case gives a correct result (image formats that are valid) or one
line on stderr naming the problem and the file or row, exit code 2, no traceback; skipped files are counted
and listed in the run directory."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import assert_one_line_error, call_cli
from PIL import Image

from cxr_age.cli import data, evaluate, predict, report, saliency, train
from cxr_age.io.decode import load_image

# (CSV bytes, fragments of the one-line error). Each table names a.png, which exists.
BAD_TABLES = {
    "missing-column": (b"image,sex\na.png,F\n", ["lacks the column(s) age", "it has: image, sex"]),
    "duplicated-row": (b"image,age\na.png,40\na.png,40\n", ["listed twice", "row 3 ('a.png')"]),
    "empty-file": (b"", ["is empty"]),
    "header-only": (b"image,age\n", ["header but no rows"]),
    "non-numeric-age": (b"image,age\na.png,forty\n", ["ages do not parse", "row 2 ('forty')"]),
    "negative-age": (b"image,age\na.png,-3\n", ["ages do not parse", "row 2 ('-3')"]),
    "400-year-age": (b"image,age\na.png,400\n", ["no images left after filters"]),
    "patient-id-missing": (b"image,age,patient_id\na.png,40,\n", ["no patient id", "row 2 ('a.png')"]),
    "non-utf8": (b"image,age\na\xff.png,40\n", ["not UTF-8", "offset"]),
    "escapes-folder": (b"image,age\n../../etc/passwd,40\n",
                       ["row 2", "'../../etc/passwd'", "outside the image folder"]),
    "absolute-path": (b"image,age\n/etc/passwd,40\n", ["row 2", "'/etc/passwd'", "outside the image folder"]),
}
TABLE_COMMANDS = {
    "data stats": (data.main, ["stats"]),
    "data split": (data.main, ["split"]),
    "data check": (data.main, ["check"]),
    "train regress": (train.main, ["regress", "--backbone", "densenet121", "--image-size", "64", "--view", "all"]),
}


@pytest.mark.parametrize("command", TABLE_COMMANDS)
@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_tables_every_command(tmp_path, capsys, case, command):
    body, fragments = BAD_TABLES[case]
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8), np.uint8))
    (tmp_path / "bad.csv").write_bytes(body)
    main, args = TABLE_COMMANDS[command]
    out = tmp_path / "out"
    result = call_cli(main, *args, "--csv", str(tmp_path / "bad.csv"), "--out", str(out), capsys=capsys)
    assert_one_line_error(result, *fragments)
    assert not out.exists()  # a refused request leaves no run folder behind


def test_ages_over_the_maximum_are_removed_and_counted(tmp_path, capsys):
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8), np.uint8))
    (tmp_path / "t.csv").write_text("image,age\na.png,400\nb.png,011M\nc.png,95\n")
    result = call_cli(data.main, "check", "--csv", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o"), capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert "  csv row 2: a.png, age 400" in result.stdout.splitlines()  # named, not counted among the over-90s
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    counts = summary["counts"]
    assert (counts["removed_implausible_age"], counts["removed_over_max_age"], counts["selected"]) == (1, 1, 1)
    assert pd.read_csv(tmp_path / "o" / "removed.csv")["image"].tolist() == ["a.png", "c.png"]


VALID = ("jpeg_named.png", "sixteen_bit.png", "rgba.png", "palette.png", "one_pixel.png", "huge.png")
INVALID = ("text.png", "truncated.png", "zero_byte.png")


@pytest.fixture(scope="module")
def image_zoo(tmp_path_factory):
    """Every kind of file a folder of X-rays may hold: six valid encodings and three broken files."""
    folder = tmp_path_factory.mktemp("zoo")
    gray = (np.add.outer(np.arange(64), np.arange(64)) * 2).astype(np.uint8)
    (folder / "jpeg_named.png").write_bytes(cv2.imencode(".jpg", gray)[1].tobytes())
    cv2.imwrite(str(folder / "sixteen_bit.png"), gray.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([gray, gray, gray, np.full_like(gray, 255)]))
    Image.fromarray(gray).convert("P").save(folder / "palette.png")
    cv2.imwrite(str(folder / "one_pixel.png"), np.full((1, 1), 128, np.uint8))
    huge = np.zeros((10000, 10000), np.uint8)
    huge[:, 5000:] = 255
    cv2.imwrite(str(folder / "huge.png"), huge)
    (folder / "text.png").write_text("this is not an image\n")
    noise = cv2.imencode(".png", np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))[1].tobytes()
    (folder / "truncated.png").write_bytes(noise[:len(noise) // 2])
    (folder / "zero_byte.png").write_bytes(b"")
    names = [*VALID, *INVALID]
    pd.DataFrame({"image": names, "age": 40, "patient_id": [f"p{i}" for i in range(len(names))]}).to_csv(
        folder / "labels.csv", index=False)
    return folder


def test_valid_encodings_decode_to_the_right_gray_values(image_zoo):
    one = load_image(tf.constant(str(image_zoo / "one_pixel.png")), 16).numpy()
    np.testing.assert_allclose(one, 128 / 255, atol=1e-6)
    huge = load_image(tf.constant(str(image_zoo / "huge.png")), 64).numpy()[..., 0]
    assert huge[:, :31].max() < 0.01 and huge[:, 33:].min() > 0.99
    reference = load_image(tf.constant(str(image_zoo / "palette.png")), 64).numpy()
    for name in ("sixteen_bit.png", "rgba.png"):
        np.testing.assert_allclose(load_image(tf.constant(str(image_zoo / name)), 64).numpy(), reference, atol=1e-5)
    jpeg = load_image(tf.constant(str(image_zoo / "jpeg_named.png")), 64).numpy()
    assert np.abs(jpeg - reference).mean() < 0.01


def test_broken_images_stop_the_check_or_are_skipped_and_listed(image_zoo, tmp_path, capsys):
    csv = str(image_zoo / "labels.csv")
    stopped = call_cli(data.main, "check", "--csv", csv, "--out", str(tmp_path / "a"), capsys=capsys)
    assert_one_line_error(stopped, "3 of 9 image files cannot be decoded", *INVALID, "--skip-unreadable")
    skipped = call_cli(data.main, "check", "--csv", csv, "--skip-unreadable", "--out", str(tmp_path / "b"),
                       capsys=capsys)
    assert skipped.returncode == 0, skipped.stderr
    listed = pd.read_csv(tmp_path / "b" / "skipped.csv")
    assert sorted(listed["image"]) == sorted(INVALID) and listed["reason"].str.len().min() > 0
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["counts"]["skipped_unreadable"] == 3


def test_predict_reads_the_valid_encodings_and_lists_the_broken(phantom_run, image_zoo, tmp_path, capsys):
    table = tmp_path / "ages.csv"
    result = call_cli(predict.main, str(image_zoo), "--run", str(phantom_run[0]), "--csv", str(table),
                      "--no-progress", capsys=capsys)
    assert result.returncode == 0, result.stderr
    ages = pd.read_csv(table)
    assert sorted(name.split("/")[-1] for name in ages["file"]) == sorted(VALID)
    assert ages["predicted_age"].between(0, 90).all()
    skipped = pd.read_csv(tmp_path / "ages_skipped.csv")
    assert sorted(name.split("/")[-1] for name in skipped["file"]) == sorted([*INVALID, "labels.csv"])


RUN_COMMANDS = {
    "evaluate": (evaluate.main, lambda run: [run]),
    "saliency": (saliency.main, lambda run: ["--run", run]),
    "predict": (predict.main, lambda run: ["IMAGE", "--run", run]),
    "report": (report.main, lambda run: [run]),
}


@pytest.mark.parametrize("command", RUN_COMMANDS)
def test_runs_that_do_not_exist_or_hold_no_model(tmp_path, capsys, command):
    main, args = RUN_COMMANDS[command]
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8), np.uint8))
    (tmp_path / "empty").mkdir()
    cases = ((tmp_path / "nowhere", "run directory not found"), (tmp_path / "empty", "holds no model.keras"))
    for run, fragment in cases:
        argv = [str(image) if arg == "IMAGE" else arg for arg in args(str(run))]
        assert_one_line_error(call_cli(main, *argv, capsys=capsys), fragment, str(run))


@pytest.mark.parametrize("args, fragment", [
    (["--group", "90-100"], "argument --group: invalid choice: '90-100'"),
    (["--method", "occlusion"], "argument --method: invalid choice: 'occlusion'"),
    (["--split", "holdout"], "argument --split: invalid choice: 'holdout'"),
])
def test_unknown_group_method_or_split(tmp_path, capsys, args, fragment):
    assert_one_line_error(call_cli(saliency.main, "--run", str(tmp_path), *args, capsys=capsys), fragment)
