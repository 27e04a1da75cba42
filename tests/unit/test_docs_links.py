"""Every relative link in the README and docs/ pages leads to a file that exists, and to a heading it has."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "benchmarks/README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's ids for a page's headings, plus explicit <a id=...> anchors."""
    text = re.sub(r"^(```|~~~).*?^\1", "", page.read_text(), flags=re.M | re.S)
    ids = set(re.findall(r'<a id="([^"]+)">', text))
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M):
        ids.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return ids


def links() -> list:
    """One case per relative link: (page, target)."""
    return [pytest.param(page, target, id=f"{page.relative_to(ROOT)}->{target}")
            for page in PAGES for target in LINK.findall(page.read_text()) if not re.match(r"^[a-z]+:", target)]


def test_the_docs_have_pages_and_links():
    assert len(PAGES) >= 10 and len(links()) >= 30


@pytest.mark.parametrize("page,target", links())
def test_a_relative_link_leads_to_an_existing_file_and_heading(page, target):
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{page.relative_to(ROOT)}: {target}: no such file"
    if anchor:
        assert dest.suffix == ".md" and anchor in anchors(dest), f"{page.relative_to(ROOT)}: {target}: no such heading"


# A path in rollout's repository written in backticks; inventories/ are the user's, and CAPITALS are placeholders.
PATH_IN_TEXT = re.compile(r"`((?:rollout|sandbox|tests|scripts|examples|docs|benchmarks)/[\w./-]*\w)(?:::\w+)?`")


def test_every_repository_path_the_docs_name_exists():
    named = {(page.relative_to(ROOT), p) for page in PAGES for p in PATH_IN_TEXT.findall(page.read_text())
             if not re.search(r"\b[A-Z]{3,}\b", p)}
    assert len(named) >= 20
    gone = sorted(f"{page}: {p}" for page, p in named if not (ROOT / p).exists())
    assert not gone, "the docs name paths that do not exist (moved or renamed?):\n" + "\n".join(gone)
