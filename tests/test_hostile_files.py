"""Hostile files: a model is code, so models are loaded in Keras safe mode only (a Lambda model is refused:
test_saliency_cli.py::test_a_model_file_with_code_is_refused), and no module deserialises user files with
pickle, which runs arbitrary code."""

import re

from helpers import ROOT

PICKLE = re.compile(r"\bpickle\b|read_pickle|allow_pickle\s*=\s*True|joblib|cloudpickle|dill\b|torch\.load")


def test_no_module_unpickles_anything():
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for path in sorted((ROOT / "cxr_age").rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1) if PICKLE.search(line)]
    assert not offenders, offenders


def test_models_are_only_loaded_in_safe_mode():
    loads = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / "cxr_age").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if "load_model(" in line]
    assert loads and all("safe_mode=True" in line for line in loads), loads
