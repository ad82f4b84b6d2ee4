"""No command opens a network connection at run time: every test runs under a guard (conftest) that refuses
and logs any lookup or connection to another host, in the test process and in each command it starts, and
fails the test that caused it. These tests show that the guard itself catches an attempt."""

import subprocess
import sys

import pytest
from helpers import guarded_environment
from no_network import LOG_VARIABLE

from cxr_age.errors import CxrAgeError
from cxr_age.nets.densenet import build_model, cached_imagenet_file
from cxr_age.tasks import CLASSIFY


def test_the_guard_refuses_and_records_a_download(tmp_path):
    log = tmp_path / "network.log"
    env = {**guarded_environment(), LOG_VARIABLE: str(log)}
    code = "import urllib.request\nurllib.request.urlopen('http://example.com/weights.h5', timeout=5)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "blocked by the test guard" in result.stderr
    assert "example.com" in log.read_text()


def test_imagenet_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(CxrAgeError, match="never downloaded at run time") as error:
        build_model(CLASSIFY.head, "densenet121", 64, weights="imagenet")
    assert str(cached_imagenet_file("densenet121")) in str(error.value)
