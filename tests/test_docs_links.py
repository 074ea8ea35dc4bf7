"""Every relative link in README.md and docs/*.md points at a file that exists, and a #fragment at a
heading of that page (GitHub's anchors). Links inside code are not links; http(s) and mailto are not checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Images drawn after the text that shows them; remove an entry once its file is committed.
PENDING_IMAGES: set = set()  # images a page may reference before they are made

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"(!?)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text: str) -> str:
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, code marks and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(page: Path) -> list[tuple[bool, str]]:
    return [(bang == "!", target) for bang, target in LINK.findall(_prose(page.read_text()))]


def test_the_link_pattern_finds_links_and_skips_code():
    sample = "[a](x.md) ![b](img/y.png) `[c](z.md)` [`d` e](w.md#f) [g](https://h)\n```\n[i](j.md)\n```\n"
    found = LINK.findall(_prose(sample))
    assert [t for _, t in found] == ["x.md", "img/y.png", "w.md#f", "https://h"]
    assert _slug("`bench tune` on the sst2-cpu models (edge-cpu-1t)") == "bench-tune-on-the-sst2-cpu-models-edge-cpu-1t"
    assert _slug("Static INT8: why it was slower than FP32, and the fix") == \
        "static-int8-why-it-was-slower-than-fp32-and-the-fix"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    broken = []
    for image, target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            if not (image and dest in PENDING_IMAGES):
                broken.append(f"{target}: no such file")
            continue
        if fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment} in {dest.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)
