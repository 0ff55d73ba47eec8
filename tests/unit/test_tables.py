"""The one Markdown table writer."""

import pytest

from lightning_aapt.tables import markdown_table

pytestmark = pytest.mark.unit


def test_a_table_is_its_header_its_rule_and_one_line_per_row():
    assert markdown_table(("model", "NFE", "px"), [("stage3", 1, "0.51 → 3.65"), ("truth", "–", "")]) == [
        "| model | NFE | px |", "|---|---|---|", "| stage3 | 1 | 0.51 → 3.65 |", "| truth | – |  |"]
    assert markdown_table(("a",), iter([])) == ["| a |", "|---|"]  # rows may come from a generator
