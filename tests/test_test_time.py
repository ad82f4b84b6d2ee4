"""Test-time views (`cxr_age.io.test_time`): the first is the image itself, the others small zooms and shifts
that keep the anatomy where it is (no view flips left and right), and a classifier refuses the spread."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_age.errors import CxrAgeError
from cxr_age.io.test_time import MAX_VIEWS, check_views, views


def _left_heavy(size: int = 64) -> np.ndarray:
    image = np.zeros((1, size, size, 1), np.float32)
    image[0, 20:44, 8:28, 0] = 1.0  # a bright block on the image's left, as the heart is on the right of a PA film
    return image


def test_the_first_view_is_the_image_and_none_is_flipped():
    image = _left_heavy()
    seen = views(image, MAX_VIEWS)
    assert len(seen) == MAX_VIEWS and np.array_equal(seen[0], image)
    columns = np.arange(64)
    for view in seen[1:]:
        assert view.shape == image.shape and view.dtype == np.float32
        assert not np.array_equal(view, image)
        mass = view[0, :, :, 0].sum(axis=0)
        centre = (mass * columns).sum() / mass.sum()
        assert abs(centre - 17.5) < 5  # still on the left, within a small shift or zoom
        assert abs(view.sum() / image.sum() - 1) < 0.2


@pytest.mark.parametrize("n", [0, 1, MAX_VIEWS + 1])
def test_a_number_of_views_outside_the_range_is_refused(n):
    with pytest.raises(CxrAgeError, match="between 2 and"):
        check_views(n)


def test_a_classifier_has_no_spread(classify_run):
    from cxr_age.age_model import AgeModel

    model = AgeModel.load(classify_run.run_dir)
    with pytest.raises(CxrAgeError, match="regressor's age"):
        model.predict(np.zeros((2, 32, 32), np.uint8), tta=3)
