import numpy as np
import pytest
from helpers import NIH_2017, NIH_2017_ROWS, NIH_2020, NIH_2020_ROWS

from cxr_age.errors import CxrAgeError
from cxr_age.io.metadata import COLUMNS, read_table

PAPER_GROUP_COUNTS = [1906, 6150, 13548, 16767, 22183, 27463, 17538, 5720, 799]  # PAPER.md, age 0 excluded
# The fixture rows hold every image whose two releases differ by more than a year; 62 of them have a 2017
# age of 90 or less (the rest are the 2017 data-entry errors over 90).
DISAGREEING_VALID_ROWS = 62


@pytest.fixture(scope="module")
def rows_2017():
    return read_table(NIH_2017_ROWS).frame


@pytest.fixture(scope="module")
def rows_2020():
    return read_table(NIH_2020_ROWS).frame


@pytest.fixture(scope="module")
def nih_2020():
    return read_table(NIH_2020).frame


def _same_images(first, second):
    first, second = (frame.set_index("image").sort_index() for frame in (first, second))
    assert (first.index == second.index).all()
    for column in ("patient_id", "sex", "view"):
        assert (first[column] == second[column]).all(), column
    return first, second


def test_both_nih_releases_parse_to_the_same_table_shape(rows_2017, rows_2020):
    for frame in (rows_2017, rows_2020):
        assert list(frame.columns) == list(COLUMNS)
        assert len(frame) == 339
    first, _ = _same_images(rows_2017, rows_2020)
    assert first.loc["00000032_035.png", "patient_id"] == "32"  # 2017 writes 00000032, v2020 writes 32


def test_nih_releases_disagree_only_on_the_known_rows(rows_2017, rows_2020):
    first, second = (frame.set_index("image")["age"] for frame in (rows_2017, rows_2020))
    gap = (first - second.reindex(first.index))[first <= 90].abs()
    assert int((gap > 1).sum()) == DISAGREEING_VALID_ROWS


@pytest.mark.shared
def test_whole_nih_releases_have_the_same_images_patients_and_views(nih_2020):
    nih_2017 = read_table(NIH_2017).frame
    for frame in (nih_2017, nih_2020):
        assert len(frame) == 112_120
        assert frame["patient_id"].nunique() == 30_805
    first, second = _same_images(nih_2017, nih_2020)
    gap = (first["age"] - second["age"])[first["age"] <= 90].abs()
    # The 2020 correction re-derived ages; it differs from 2017 by at most a year on all but a few dozen images.
    assert int((gap > 1).sum()) == DISAGREEING_VALID_ROWS
    assert (gap == 0).mean() > 0.75


def test_the_shipped_v2020_table_is_whole(nih_2020):
    assert len(nih_2020) == 112_120
    assert nih_2020["patient_id"].nunique() == 30_805
    assert nih_2020["view"].value_counts().to_dict() == {"PA": 67_310, "AP": 44_810}


def test_2017_months_and_days(rows_2017):
    by_image = rows_2017.set_index("image")["age"]
    assert by_image["00013378_000.png"] == pytest.approx(11 / 12)  # 011M
    assert by_image["00024680_000.png"] == pytest.approx(1 / 365.25)  # 001D


def test_outliers_over_90(rows_2017, nih_2020):
    assert int((rows_2017["age"] > 90).sum()) == 51  # the fixture keeps every 2017 row over 90
    assert int((rows_2017["age"] > 100).sum()) == 16
    assert int((nih_2020["age"] > 90).sum()) == 32


def test_group_counts_match_paper(nih_2020):
    kept = nih_2020[(nih_2020["age"] <= 90) & (nih_2020["age"] > 0)]
    assert np.bincount(kept["group"], minlength=9).tolist() == PAPER_GROUP_COUNTS
    assert int((nih_2020["age"] == 0).sum()) == 14
    assert (nih_2020.loc[nih_2020["age"] == 0, "group"] == 0).all()


def test_median_baseline_is_13_6_years(nih_2020):
    ages = nih_2020["age"]
    assert ages.median() == 49
    assert (ages - 49).abs().mean() == pytest.approx(13.6, abs=0.05)


def test_generic_csv_with_aliases(write_csv):
    path = write_csv("Path,AGE,Subject_ID,Gender,View,Labels\na.png,40,p1,F,pa,Mass\nb.jpg,011M,p2,M,AP,\n")
    frame = read_table(path).frame
    assert frame["image"].tolist() == ["a.png", "b.jpg"]
    assert frame["age"].tolist() == pytest.approx([40, 11 / 12])
    assert frame["patient_id"].tolist() == ["p1", "p2"]
    assert frame["view"].tolist() == ["PA", "AP"]
    assert frame["findings"].tolist() == ["Mass", ""]
    assert frame["row"].tolist() == [2, 3]


def test_patient_from_nih_file_names_when_no_id_column(write_csv):
    table = read_table(write_csv("image,age\n00000001_000.png,58\n00000001_001.png,58\n00000002_000.png,81\n"))
    assert table.frame["patient_id"].tolist() == ["1", "1", "2"]
    assert "NIH file names" in table.notes[0]


def test_each_image_its_own_patient_is_a_warning(write_csv):
    table = read_table(write_csv("image,age\nx.png,58\ny.png,60\n"))
    assert table.frame["patient_id"].tolist() == ["x.png", "y.png"]
    assert "EACH IMAGE IS TREATED AS ITS OWN PATIENT" in table.warnings[0]


def test_missing_columns_are_named(write_csv):
    with pytest.raises(CxrAgeError, match=r"lacks the column\(s\) age .*it has: image, sex"):
        read_table(write_csv("image,sex\na.png,F\n"))


@pytest.mark.parametrize(
    "body, message",
    [
        ("image,age\na.png,forty\nb.png,-3\nc.png,50\n", r"2 ages do not parse .*row 2 \('forty'\), row 3 \('-3'\)"),
        ("image,age\na.png,\n", r"1 ages do not parse.*row 2 \(''\)"),
        ("image,age,patient_id\na.png,40,\n", r"1 rows have no patient id: row 2 \('a.png'\)"),
        ("image,age\na.png,40\na.png,40\n", r"1 images are listed twice: row 3 \('a.png'\)"),
        ("image,age\n,40\n", r"1 rows have no image name: row 2"),
        ("image,age\n", "has a header but no rows"),
        ("", "is empty"),
    ],
)
def test_bad_tables_name_the_rows(write_csv, body, message):
    with pytest.raises(CxrAgeError, match=message):
        read_table(write_csv(body))


def test_non_utf8_bytes(write_csv):
    with pytest.raises(CxrAgeError, match="not UTF-8"):
        read_table(write_csv(b"image,age\nna\xefve\xff.png,40\n"))


def test_missing_csv(tmp_path):
    with pytest.raises(CxrAgeError, match="CSV file not found"):
        read_table(tmp_path / "nope.csv")


def test_normalised_columns_same_for_all_sources(write_csv, nih_2020):
    generic = read_table(write_csv("image,age\na.png,40\n")).frame
    assert list(generic.columns) == list(nih_2020.columns)
    assert generic.dtypes.equals(nih_2020.dtypes)
