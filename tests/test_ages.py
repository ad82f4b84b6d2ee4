import numpy as np
import pandas as pd
import pytest

from cxr_age.errors import CxrAgeError
from cxr_age.io.ages import GROUP_LABELS, NO_GROUP, group_from_label, group_index, parse_age, parse_ages


@pytest.mark.parametrize(
    "text, years",
    [("58", 58.0), ("058Y", 58.0), ("58.5", 58.5), ("011M", 11 / 12), ("003W", 21 / 365.25),
     ("001D", 1 / 365.25), (" 7y ", 7.0), ("0", 0.0)],
)
def test_parse_age_units(text, years):
    assert parse_age(text) == pytest.approx(years)


@pytest.mark.parametrize("text", ["", "abc", "-5", "58Q", "Y", "5 years", "nan"])
def test_parse_age_rejects(text):
    assert parse_age(text) is None


def test_parse_ages_vectorised_matches_scalar():
    values = pd.Series(["058Y", "011M", "bad", "42", "-1", "001D"])
    parsed = parse_ages(values)
    expected = [parse_age(v) for v in values]
    for got, want in zip(parsed, expected):
        assert (np.isnan(got) and want is None) or got == pytest.approx(want)


@pytest.mark.parametrize(
    "age, label",
    [(0, "0-10"), (0.5, "0-10"), (10, "0-10"), (10.5, "10-20"), (20, "10-20"), (80.01, "80-90"), (90, "80-90")],
)
def test_group_edges_are_right_closed(age, label):
    assert GROUP_LABELS[int(group_index(age))] == label


@pytest.mark.parametrize("age", [90.5, 91, 400, -1, float("nan")])
def test_ages_outside_groups(age):
    assert int(group_index(age)) == NO_GROUP


def test_group_labels_and_lookup():
    assert GROUP_LABELS == ("0-10", "10-20", "20-30", "30-40", "40-50", "50-60", "60-70", "70-80", "80-90")
    assert group_from_label("70-80") == 7
    with pytest.raises(CxrAgeError, match="unknown age group '70-85'"):
        group_from_label("70-85")
