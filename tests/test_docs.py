"""The README's contract table is generated from the schema and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from features.schema import TABLES, describe_contract_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_contract_section_matches_the_schema():
    text = README.read_text()
    section = text.split("<!-- contract:start -->\n", 1)[1].split("<!-- contract:end -->", 1)[0]
    assert section == describe_contract_markdown()


def test_contract_markdown_names_every_column():
    markdown = describe_contract_markdown()
    for table in TABLES.values():
        for column in table.columns:
            assert f"`{column.name}`" in markdown
