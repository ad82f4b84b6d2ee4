import shutil

import pandas as pd
import pytest

from cxr_age.config import DataConfig
from cxr_age.errors import CxrAgeError
from cxr_age.io.decode import find_unreadable
from cxr_age.io.image_check import check_images
from cxr_age.io.selection import select
from cxr_age.paths import sample_image_dir

GOOD = ["00000075_000.png", "00000100_000.png", "00000129_000.png"]


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in GOOD:
        shutil.copy(sample_image_dir() / name, images / name)
    whole = (sample_image_dir() / GOOD[0]).read_bytes()
    (images / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (images / "text.png").write_text("not an image")
    (images / "empty.png").write_bytes(b"")
    return tmp_path


def _csv(folder, names):
    path = folder / "labels.csv"
    pd.DataFrame({"image": names, "age": range(20, 20 + len(names))}).to_csv(path, index=False)
    return DataConfig(csv=str(path))


def test_find_unreadable_uses_the_training_decoder(folder):
    paths = [str(folder / "images" / n) for n in GOOD + ["truncated.png", "text.png", "empty.png"]]
    failures = find_unreadable(paths, progress=False)
    assert sorted(failures) == [3, 4, 5]
    assert "Unknown image file format" in failures[4]


def test_unreadable_stop_the_run_before_training(folder):
    selection = select(_csv(folder, GOOD + ["truncated.png", "text.png"]))
    message = r"2 of 5 image files cannot be decoded .*truncated.png, text.png.*`skip_unreadable`"
    with pytest.raises(CxrAgeError, match=message):
        check_images(selection, skip_missing=False, skip_unreadable=False, progress=False)


def test_unreadable_skipped_are_counted_and_listed(folder):
    selection = check_images(select(_csv(folder, GOOD + ["truncated.png", "empty.png"])), False, True, progress=False)
    assert selection.counts["skipped_unreadable"] == 2
    assert selection.frame["image"].tolist() == GOOD
    assert selection.skipped["image"].tolist() == ["truncated.png", "empty.png"]
    assert selection.skipped["row"].tolist() == [5, 6]


def test_missing_files_count_and_first_five(folder):
    names = GOOD + [f"gone{i}.png" for i in range(7)]
    message = (r"7 of 10 image files are missing .*gone0.png, gone1.png, gone2.png, gone3.png, gone4.png "
               r"\.\.\.\); pass `skip_missing`")
    with pytest.raises(CxrAgeError, match=message):
        check_images(select(_csv(folder, names)), False, False, progress=False)
    selection = check_images(select(_csv(folder, names)), True, False, progress=False)
    assert selection.counts["skipped_missing"] == 7
    assert (selection.skipped["reason"] == "file not found").all()


def test_nothing_left(folder):
    with pytest.raises(CxrAgeError, match="no images left"):
        check_images(select(_csv(folder, ["gone.png"])), True, True, progress=False)
