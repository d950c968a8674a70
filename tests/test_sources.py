"""Every source a user is pointed to can be opened: a public page, or a section of docs/SOURCES.md.

Citations name a URL, a documented setting, a kernel constant, a public GitHub issue written
``owner/repo#N``, or a section written as the path ``docs/SOURCES.md`` plus ``#`` and the heading's
GitHub anchor. Never a private file, never an issue number of our own tracker.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

from simscale.cli import main
from simscale.scenarios import preset_names

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "docs" / "SOURCES.md"
THIS = Path(__file__).resolve()


# The internal reference's own citation forms: its name (not an identifier such as REFERENCE_TRACE), its
# parts, its lettered or numbered sections.
_INTERNAL = re.compile(r"REFERENCE(?![_A-Z])|Part \d+ §|§\s?[A-Z]\d|§\s?0\b")
# A section sign names a section of a public specification only where the text names that spec.
_SECTION_SIGN = re.compile(r"§\s?\d")
_PUBLIC_SPEC = re.compile(r"\bRFC \d+")
# An issue number is public only with its repository in front (dotnet/aspnetcore#30863).
_ISSUE_WORD = re.compile(r"\bissue #\d", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"(?<![\w/&#.-])#\d+\b")
_ANCHOR_LINK = re.compile(r"docs/SOURCES\.md#([\w-]*)")
_URL = re.compile(r"https?://\S+")


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _python_files() -> list[Path]:
    """Every Python file we wrote, except this one (it spells out the forms it looks for)."""
    folders = ("simscale", "tests", "benchmarks", "scripts")
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if p.resolve() != THIS)


def _python_prose(path: Path) -> tuple[str, str]:
    """(docstrings and comments, every string literal and comment) of one module."""
    text = path.read_text()
    prose: list[str] = []
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                prose.append(docstring)
    literals: list[str] = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            prose.append(token.string)
            literals.append(token.string)
        elif token.type == tokenize.STRING:
            literals.append(token.string)
    return "\n".join(prose), "\n".join(literals)


def _markdown_texts() -> Iterator[tuple[str, str]]:
    """(name, markdown) for README.md, docs/*.md and every notebook's markdown cells."""
    yield "README.md", (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "docs").glob("*.md")):
        yield _relative(path), path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for number, cell in enumerate(cells):
            if cell["cell_type"] == "markdown":
                yield f"{_relative(path)} (cell {number})", "".join(cell["source"])


def _internal_citations(text: str) -> list[str]:
    """The offending snippets: internal-reference citations and issue numbers without a repository."""
    found = [_context(text, m) for m in _INTERNAL.finditer(text)]
    if not _PUBLIC_SPEC.search(text):
        found += [_context(text, m) for m in _SECTION_SIGN.finditer(text)]
    found += [_context(text, m) for m in _ISSUE_WORD.finditer(text)]
    found += [_context(text, m) for m in _BARE_NUMBER.finditer(text)]
    return found


def _context(text: str, match: re.Match[str]) -> str:
    return text[max(0, match.start() - 40) : match.end() + 40].replace("\n", " ")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _sections() -> dict[str, str]:
    """SOURCES.md's sections: anchor of each heading (any level, outside code fences) to its body."""
    sections: dict[str, str] = {}
    current: str | None = None
    fenced = False
    for line in SOURCES.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            anchor = base = _anchor(heading.group(2))
            count = 1
            while anchor in sections:
                anchor = f"{base}-{count}"
                count += 1
            current = anchor
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


@pytest.mark.parametrize("name", preset_names())
def test_describe_cites_no_internal_source(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", name, "--describe"]) == 0
    text = capsys.readouterr().out
    assert "Source:" in text
    for forbidden in ("REFERENCE", "Part 1 §", "Part 2 §"):
        assert forbidden not in text, f"`simscale simulate {name} --describe` cites {forbidden!r}"
    bad = [_context(text, m) for m in (*_ISSUE_WORD.finditer(text), *_BARE_NUMBER.finditer(text))]
    assert not bad, f"`simscale simulate {name} --describe` cites an issue without its repository: {bad}"


@pytest.mark.parametrize("path", _python_files(), ids=_relative)
def test_python_cites_no_internal_source(path: Path) -> None:
    relative = _relative(path)
    prose, literals = _python_prose(path)
    found = [_context(literals, m) for m in _INTERNAL.finditer(literals)]
    if not _PUBLIC_SPEC.search(literals):
        found += [_context(literals, m) for m in _SECTION_SIGN.finditer(literals)]
    found += [_context(prose, m) for m in (*_ISSUE_WORD.finditer(prose), *_BARE_NUMBER.finditer(prose))]
    assert not found, f"{relative} cites what users cannot open: {found}"


@pytest.mark.parametrize(("name", "text"), list(_markdown_texts()), ids=lambda value: str(value)[:60])
def test_markdown_cites_no_internal_source(name: str, text: str) -> None:
    found = _internal_citations(text)
    assert not found, f"{name} cites what users cannot open: {found}"


def _every_text() -> Iterator[tuple[str, str]]:
    for path in _python_files():
        if path.resolve() != THIS:
            yield _relative(path), path.read_text()
    yield from _markdown_texts()


def test_every_sources_anchor_resolves() -> None:
    anchors = set(_sections())
    broken = [
        f"{name}: docs/SOURCES.md#{anchor}"
        for name, text in _every_text()
        for anchor in _ANCHOR_LINK.findall(text)
        if anchor not in anchors
    ]
    inside = SOURCES.read_text()
    broken += [f"docs/SOURCES.md: (#{a})" for a in re.findall(r"\]\(#([\w-]+)\)", inside) if a not in anchors]
    assert not broken, f"links to sections docs/SOURCES.md does not have: {broken}"


def test_sources_anchors_are_used() -> None:
    # At least the code points into the file: a SOURCES.md nobody links to would rot unnoticed.
    linked = {anchor for _, text in _every_text() for anchor in _ANCHOR_LINK.findall(text)}
    assert linked, "nothing links to a section of docs/SOURCES.md"


def test_every_sources_section_has_a_url() -> None:
    sections = {anchor: body for anchor, body in _sections().items() if anchor != _anchor(_title())}
    assert sections, "docs/SOURCES.md has no sections"
    missing = [anchor for anchor, body in sections.items() if not _URL.search(body)]
    assert not missing, f"docs/SOURCES.md sections without an http(s) URL: {missing}"


def _title() -> str:
    first = SOURCES.read_text().splitlines()[0]
    assert first.startswith("# "), f"docs/SOURCES.md should open with a title, got {first!r}"
    return first[2:]
