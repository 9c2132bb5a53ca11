"""The lineage page: a self-contained, balanced HTML document with an inline SVG picture and a node table."""

from __future__ import annotations

from html.parser import HTMLParser

from guardflow.lineage.graph import (
    LineageGraph,
    trace_dataset,
)
from guardflow.lineage.labels import node_label
from guardflow.lineage.page import render_html
from tests.unit.lineage.sample import (
    FAILED_MESSAGE,
    TRAIN_FILE,
    TRAIN_SHA256,
)

VOID_TAGS = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"}


class _BalanceChecker(HTMLParser):
    """Collects the page's text and every tag-nesting problem it finds."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_html_page_is_self_contained_balanced_and_labels_every_node(graph: LineageGraph) -> None:
    # given the forward trace of the training file (one promoted and one failed flow run)
    traced = trace_dataset(graph, TRAIN_FILE)
    # when it is rendered as a page
    page = render_html(traced, "lineage of adult.data.gz")
    # then it is an HTML document with an inline picture and nothing fetched from elsewhere
    assert page.startswith("<!doctype html>"), f"page starts with {page[:30]!r}"
    assert "<svg" in page and "</svg>" in page, "no inline SVG in the page"
    for external in ("<script", " src=", " href=", "url(http"):
        assert external not in page, f"the page refers outside itself: {external!r}"
    # and its tags balance
    checker = _BalanceChecker()
    checker.feed(page)
    checker.close()
    assert not checker.problems, f"unbalanced tags: {checker.problems[:5]}"
    assert not checker.open, f"tags left open: {checker.open}"
    # and every node's label, the file's sha256 and the failed run's message appear in its text
    text = "".join(checker.text)
    missing = [node_label(traced, key) for key in traced.nodes if node_label(traced, key) not in text]
    assert not missing, f"labels missing from the page: {missing}"
    assert f"sha256 {TRAIN_SHA256[:12]}…" in text, "the file's short sha256 is not in the picture"
    assert f"sha256 {TRAIN_SHA256}" in text, "the file's full sha256 is not in the table"
    assert FAILED_MESSAGE in text, "the failed run's message is not on the page"
    assert 'class="node failed' in page, "the failed run is not drawn as failed"
