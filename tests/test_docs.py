"""The README and docs/: a table of contents, links that resolve inside the repository,
the exit-code table of sslinv.errors, and an architecture page that places every layer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_layers import LAYERS

from sslinv import errors

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in without_code(text).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def without_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve_inside_the_repository(page: Path) -> None:
    text = page.read_text()
    for target in LINK.findall(without_code(text)):
        if target.startswith(("https://", "http://")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.is_relative_to(REPO), f"{page.name}: {target} leaves the repository"
        assert dest.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(dest.read_text()), f"{page.name}: no heading for #{anchor} in {dest.name}"
    assert "shared/spec" not in text and "issue" not in text.lower(), f"{page.name} uses internal references"


def test_readme_has_a_table_of_contents_and_the_ci_commands() -> None:
    text = (REPO / "README.md").read_text()
    toc = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    entries = re.findall(r"\]\(#([^)]+)\)", toc)
    headings = [h for h in re.findall(r"^## (.*)$", text, flags=re.M) if h != "Contents"]
    assert len(entries) == len(headings) and set(entries) <= anchors(text)
    assert 'pip install -e ".[dev]"' in text and "python -m pytest" in text  # what .ci/run runs


def test_readme_exit_codes_are_the_table_in_errors() -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.M))
    assert {int(k): v for k, v in rows.items()} == errors.EXIT_CODES
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.SslinvError)]
    assert {c.exit_code for c in classes} <= set(errors.EXIT_CODES)


def test_architecture_page_places_every_layer() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    for _, units in LAYERS:
        for unit in units - {"", "__main__"}:
            assert f"`{unit}" in text, f"docs/architecture.md does not place {unit}"
