"""The Python examples of the README and then of the Python API page run as written, in order and in one
namespace like a notebook, from a folder that holds the repository's `data/` and `tests/` (the dataset
fixtures) as their relative paths expect; so the documented API cannot drift from the code."""

import re
import subprocess
import sys

import pytest
from helpers import ROOT, guarded_environment


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.readme
def test_the_readmes_python_examples_run(tmp_path):
    blocks = [block for page in (ROOT / "README.md", ROOT / "docs" / "python-api.md")
              for block in python_blocks(page.read_text())]
    assert len(blocks) >= 2
    for folder in ("data", "tests"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    script = tmp_path / "readme_examples.py"
    script.write_text("\n\n".join(blocks))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                            env={**guarded_environment(), "MPLBACKEND": "Agg"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "notebook-regressor"
    assert (run / "model.keras").is_file() and (run / "metrics.json").is_file()
    assert "regress 32 test MAE" in result.stdout
    assert "predicted_age" in result.stdout
    assert (tmp_path / "saliency.png").stat().st_size > 5_000
    assert "chexpert {'': 320" in result.stdout
    assert "regress 32 48 test images" in result.stdout  # the Run object reads what training wrote
