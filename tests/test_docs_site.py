"""`simscale docs`: the site builds offline, strictly, with API pages, executed notebooks and a gallery.

One quick build (about 15 s here) serves most checks; a second, tiny build shows that the strict mode
really turns a broken link into a failure.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simscale.cli import main
from simscale.docs_site import API_MODULES, QUICK_NOTEBOOKS, SiteSources, _rewrite_links, build_site

ROOT = Path(__file__).resolve().parents[1]
NOT_EXECUTED = "Shown without outputs"
PNG_IMAGE = re.compile(r'<img[^>]*src="data:image/png;base64,[A-Za-z0-9+/]{100}')
REMOTE_ASSET = re.compile(r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="(?:https?:)?//[^"]*"', re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    home = build_site(out, quick=True)
    assert home == out.resolve() / "index.html"
    return out


def _page(site: Path, relative: str) -> str:
    path = site / relative
    assert path.is_file(), f"the site has no {relative}"
    return path.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("module", API_MODULES)
def test_every_api_module_has_a_page_from_its_docstrings(site: Path, module: str) -> None:
    html = _page(site, f"api/{module}.html")
    assert 'class="doc doc-object' in html or "doc-contents" in html, f"{module}'s page has no mkdocstrings content"


@pytest.mark.slow
def test_api_pages_document_the_main_entry_points(site: Path) -> None:
    scenarios = _page(site, "api/simscale.scenarios.html")
    for name in ("simulate", "sweep", "replicate", "Scenario"):
        assert re.search(rf'id="simscale\.scenarios\.{name}"', scenarios), f"no entry for {name}"
    assert 'id="simscale.config.Scenario"' in _page(site, "api/simscale.config.html")


@pytest.mark.slow
def test_executed_notebooks_show_their_static_figures(site: Path) -> None:
    for stored in sorted((ROOT / "notebooks").glob("*.ipynb")):
        html = _page(site, f"notebooks/{stored.stem}.html")
        if stored.name in QUICK_NOTEBOOKS:
            assert NOT_EXECUTED not in html
        else:
            assert NOT_EXECUTED in html, f"{stored.name} is not executed in a quick build, and must say so"
    executed = _page(site, "notebooks/04.00-Servers-Without-A-Backplane.html")
    assert len(PNG_IMAGE.findall(executed)) >= 2, "the executed notebook's figures carry no PNG"
    assert "<math" in executed, "the notebook's formulas were not converted to MathML"


@pytest.mark.slow
def test_notebook_links_lead_to_notebook_pages(site: Path) -> None:
    index = _page(site, "notebooks/00.00-Index.html")
    linked = set(re.findall(r'href="(\d\d\.\d\d-[\w.-]+\.html)"', index))
    assert linked, "the index links to no notebook page"
    assert all((site / "notebooks" / name).is_file() for name in linked)


@pytest.mark.slow
def test_gallery_shows_every_figure(site: Path) -> None:
    html = _page(site, "gallery.html")
    stems = {path.stem for path in (ROOT / "figures").iterdir() if path.suffix in (".png", ".svg")}
    assert stems
    for stem in stems:
        assert re.search(rf'<img[^>]*src="figures/{re.escape(stem)}\.png"', html), f"the gallery lacks {stem}"
        assert (site / "figures" / f"{stem}.png").is_file()


@pytest.mark.slow
def test_guide_holds_the_readme_and_every_docs_page(site: Path) -> None:
    text = re.sub(r"<[^>]+>", "", _page(site, "index.html"))  # the code block is split into highlighted spans
    assert "bash scripts/setup.sh demo" in text
    for doc in sorted((ROOT / "docs").glob("*.md")):
        _page(site, f"guide/{doc.stem}.html")


@pytest.mark.slow
def test_nothing_is_loaded_from_the_network_at_view_time(site: Path) -> None:
    remote = {
        f"{page.relative_to(site)}: {match}"
        for page in site.rglob("*.html")
        for match in REMOTE_ASSET.findall(page.read_text(encoding="utf-8"))
    }
    assert not remote, f"pages load remote scripts, styles or images: {sorted(remote)[:5]}"


@pytest.mark.slow
def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for folder in ("docs", "notebooks", "figures"):
        (root / folder).mkdir(parents=True)
    (root / "README.md").write_text("# simscale\n\nSee [the missing page](docs/MISSING.md).\n")
    with pytest.raises(RuntimeError, match="strict"):
        build_site(tmp_path / "site", quick=True, sources=SiteSources(root))


def test_refuses_to_empty_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="did not write"):
        build_site(tmp_path, quick=True, sources=SiteSources(ROOT))
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("depth", "markdown", "expected"),
    [
        (0, "![One server](figures/single-server.png)", "![One server](figures/single-server.png)"),
        (0, "[the sources](docs/SOURCES.md#hub-protocol)", "[the sources](guide/SOURCES.md#hub-protocol)"),
        (1, "[home](../README.md)", "[home](../index.md)"),
        (1, "[sibling](ARCHITECTURE.md)", "[sibling](../guide/ARCHITECTURE.md)"),
        (1, "[the CPU](../simscale/model/cpu.py)", "the CPU (`simscale/model/cpu.py`)"),
        (0, "[a page](https://example.org/x)", "[a page](https://example.org/x)"),
        (0, "[up](#top)", "[up](#top)"),
    ],
)
def test_repository_links_become_site_links(depth: int, markdown: str, expected: str) -> None:
    assert _rewrite_links(markdown, depth=depth) == expected


def test_help_states_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["docs", "--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: site/)" in text
    assert "(default: off)" in text
    assert "Examples:" in text
