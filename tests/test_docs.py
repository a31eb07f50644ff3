"""The docs stay true: the README's contract table and layout, and docs/ARCHITECTURE.md's module map."""

from __future__ import annotations

import re
from pathlib import Path

from features.schema import TABLES, describe_contract_markdown

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
ARCHITECTURE = REPO_ROOT / "docs" / "ARCHITECTURE.md"
PACKAGES = ("features", "models", "pipelines", "service")
# a module or folder of the repository named in backticks: `pipelines/store/sqlite.py`, `models/recommender/`
NAMED_PATH = re.compile(r"`((?:features|models|pipelines|service|tests|bench|docs)/[\w/.]*)`")


def test_readme_contract_section_matches_the_schema():
    text = README.read_text()
    section = text.split("<!-- contract:start -->\n", 1)[1].split("<!-- contract:end -->", 1)[0]
    assert section == describe_contract_markdown()


def test_contract_markdown_names_every_column():
    markdown = describe_contract_markdown()
    for table in TABLES.values():
        for column in table.columns:
            assert f"`{column.name}`" in markdown


def test_every_module_the_architecture_page_names_exists():
    named = set(NAMED_PATH.findall(ARCHITECTURE.read_text()))
    assert len(named) > 80
    missing = sorted(path for path in named if not (REPO_ROOT / path).exists())
    assert missing == []


def test_the_architecture_page_names_every_module():
    named = set(NAMED_PATH.findall(ARCHITECTURE.read_text()))
    modules = {
        path.relative_to(REPO_ROOT).as_posix()
        for package in PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
        if path.name != "__init__.py" or path.parent.name == "recommender"
    }
    assert sorted(modules - named) == []


def test_the_readme_layout_shows_the_architecture_pages_layers():
    layers = ARCHITECTURE.read_text().split("## Layers\n\n```\n", 1)[1].split("```", 1)[0]
    layout = README.read_text().split("## Layout\n", 1)[1]
    assert layers in layout
    assert "docs/ARCHITECTURE.md" in layout
