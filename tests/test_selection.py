import pytest

from cxr_age.config import DataConfig
from cxr_age.errors import CxrAgeError
from cxr_age.io.selection import NIH, select


def test_default_is_the_embedded_sample():
    selection = select(DataConfig())
    assert "embedded demo sample" in selection.source
    assert selection.counts["selected"] == 477
    assert all(p.endswith(".png") and "/data/sample/images/" in p for p in selection.frame["path"])


def test_nih_default_needs_no_images_and_reports_removals():
    everything = select(DataConfig(), default=NIH)
    selection = select(DataConfig(view="PA"), default=NIH)
    assert selection.image_dir is None
    assert selection.counts["read"] == 112_120
    assert selection.counts["removed_over_max_age"] == 32
    assert selection.counts["removed_other_view"] == int((everything.frame["view"] == "AP").sum())
    assert set(selection.frame["view"]) == {"PA"}
    assert selection.counts["selected"] + selection.counts["removed_other_view"] == everything.counts["selected"]


def test_max_age_filter_is_configurable():
    assert select(DataConfig(max_age=95), default=NIH).counts["removed_over_max_age"] == 0
    assert select(DataConfig(max_age=60)).frame["age"].max() <= 60


def _images(tmp_path, names):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_csv_with_image_dir_default(tmp_path, write_csv):
    _images(tmp_path, ["a.png"])
    selection = select(DataConfig(csv=str(write_csv("image,age\na.png,40\n"))))
    assert selection.image_dir == tmp_path / "images"
    assert selection.frame["path"][0] == str(tmp_path / "images" / "a.png")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/../../x.png"])
def test_paths_must_stay_in_the_image_folder(tmp_path, write_csv, name):
    _images(tmp_path, [])
    with pytest.raises(CxrAgeError, match=r"row 2: image path .* is outside the image folder"):
        select(DataConfig(csv=str(write_csv(f"image,age\n{name},40\n"))))


def test_empty_selection(tmp_path, write_csv):
    _images(tmp_path, [])
    with pytest.raises(CxrAgeError, match="no images left after filters"):
        select(DataConfig(csv=str(write_csv("image,age,view\na.png,95,PA\nb.png,40,AP\n")), view="PA"))


def test_view_filter_without_view_column(tmp_path, write_csv):
    _images(tmp_path, [])
    with pytest.raises(CxrAgeError, match="has no view column"):
        select(DataConfig(csv=str(write_csv("image,age\na.png,40\n")), view="AP"))


def test_missing_image_folder(write_csv, tmp_path):
    with pytest.raises(CxrAgeError, match="image folder not found"):
        select(DataConfig(csv=str(write_csv("image,age\na.png,40\n")), image_dir=str(tmp_path / "nowhere")))
