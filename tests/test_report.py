"""`cxr-age-report`: one self-contained HTML page, checked by parsing it: every section, every figure
embedded as a PNG data URI, no script, stylesheet link, frame or external reference (so it opens offline)."""

import base64
from html.parser import HTMLParser

from helpers import assert_one_line_error, call_cli

from cxr_age.cli import report, saliency
from cxr_age.io.ages import GROUP_LABELS
from cxr_age.stats.age_gap import FINDINGS
from cxr_age.workflows.age_gap import analyse_age_gap

SECTIONS = {"config", "data", "metrics", "figures", "saliency", "age-gap", "outcomes", "uncertainty", "external"}
LOADING_TAGS = {"script", "link", "iframe", "frame", "object", "embed", "audio", "video", "source", "base"}


class Page(HTMLParser):
    """The parts of a page the tests look at: sections, images, every attribute, table cells, captions."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sections: list[str] = []
        self.images: list[str] = []
        self.attributes: list[str] = []
        self.cells: list[str] = []
        self.captions: list[str] = []
        self._open = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attributes = dict(attrs)
        self.attributes += [value or "" for value in attributes.values()]
        if tag == "section":
            self.sections.append(attributes["id"])
        if tag == "img":
            self.images.append(attributes["src"])
        self._open = tag

    def handle_endtag(self, tag):
        self._open = ""

    def handle_data(self, data):
        if not data.strip():
            return
        if self._open in ("td", "th"):
            self.cells.append(data.strip())
        elif self._open == "figcaption":
            self.captions.append(data.strip())


def parse(path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def assert_self_contained(page: Page) -> None:
    assert not LOADING_TAGS & set(page.tags)
    for value in page.attributes:
        if value.startswith("data:image/png;base64,"):
            continue
        assert "//" not in value and not value.startswith(("http", "file:", "data:")), value[:80]
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_regress_report_with_saliency_and_age_gap(phantom_run, tmp_path, capsys):
    run_dir, _ = phantom_run
    analyse_age_gap(run_dir)
    mapped = call_cli(saliency.main, "--run", str(run_dir), "--limit", "2", "--no-progress", capsys=capsys)
    assert mapped.returncode == 0, mapped.stderr
    out = tmp_path / "phantom.html"
    result = call_cli(report.main, str(run_dir), "--out", str(out), capsys=capsys)
    assert result.returncode == 0, result.stderr
    page = parse(out)
    assert set(page.sections) == SECTIONS
    assert_self_contained(page)
    assert len(page.images) >= 7  # curves, predicted vs true, error by group, saliency grid, three age-gap figures
    assert {*GROUP_LABELS, "images", "patients"} <= set(page.cells)
    assert {"mae", "rmse", "r2", "pearson_r"} <= set(page.cells)
    assert "0.003" in page.cells  # the paper's minimum validation loss beside ours
    assert set(FINDINGS) <= set(page.cells) and {"PA", "AP", "M", "F"} <= set(page.cells)
    assert {"heart", "elsewhere", "area"} <= set(page.cells)  # the saliency region table
    assert "average saliency map per age group" in page.captions


def test_classify_report_has_roc_and_says_what_is_missing(classify_run, capsys):
    run_dir = classify_run[0]
    result = call_cli(report.main, str(run_dir), capsys=capsys)
    assert result.returncode == 0, result.stderr
    page = parse(run_dir / "report.html")
    assert set(page.sections) == SECTIONS
    assert_self_contained(page)
    assert {"macro_auc", "accuracy", "off_by_one_accuracy"} <= set(page.cells)
    text = (run_dir / "report.html").read_text()
    assert "one-vs-rest ROC curves per age group" in text
    assert "no age-gap analysis yet" in text
    assert "no external evaluation yet" in text


def test_bad_requests_give_one_line(classify_run, tmp_path, capsys):
    assert_one_line_error(call_cli(report.main, str(tmp_path / "nothing"), capsys=capsys), "run directory not found")
    mine = tmp_path / "mine.html"
    mine.write_text("mine")
    assert_one_line_error(call_cli(report.main, str(classify_run[0]), "--out", str(mine), capsys=capsys),
                          "already exists")
    assert mine.read_text() == "mine"
