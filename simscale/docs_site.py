"""``simscale docs``: build the documentation as a static HTML site that opens without a network.

The site is the repository's own text, arranged for reading: the README as the home page, every
``docs/*.md`` as a guide page, the teaching notebooks executed (each plotly figure carries a static
PNG beside its interactive JSON, see :func:`simscale.figures.notebook_setup`), a gallery of ``figures/``
and an API reference drawn from the docstrings.

The generator is MkDocs with the Material theme, mkdocstrings (the API pages) and mkdocs-jupyter
(the notebook pages). Nothing is generated inside the repository: the pages and the configuration are
laid out in a temporary staging folder, the notebooks are executed there with nbclient (mkdocs-jupyter
only renders them), and MkDocs writes the finished site to the output folder. The build is strict:
a MkDocs warning (a broken link, a docstring it cannot parse) fails it.

Offline means nothing is fetched at view time: no web fonts (the theme's ``font: false``), the
figures as files or PNG data, and the formulas in the notebooks converted to MathML while staging, so
the MathJax script nbconvert's template always writes is pointed at an empty local file. Material's
``offline`` plugin is left out on purpose: for search from ``file://`` it loads a shim from a CDN.
Search therefore works when the site is served (``python -m http.server -d site``), not from disk.

Only the standard library is imported here; MkDocs and its plugins are loaded when a site is built,
so ``simscale --help`` works without the ``dev`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "API_MODULES",
    "QUICK_NOTEBOOKS",
    "SiteSources",
    "add_docs_parser",
    "build_site",
]

API_MODULES = (
    "simscale",
    "simscale.scenarios",
    "simscale.planning",
    "simscale.metrics",
    "simscale.figures",
    "simscale.config",
    "simscale.model",
    "simscale.backplane",
    "simscale.hub",
    "simscale.client",
    "simscale.loadgen",
    "simscale.validation",
)
"""The modules with a page in the API reference, in the order of the navigation."""

QUICK_NOTEBOOKS = ("00.00-Index.ipynb", "04.00-Servers-Without-A-Backplane.ipynb")
"""What ``--quick`` executes: the index and the fastest notebook that draws figures (about 5 s)."""

DEFAULT_OUT = Path("site")

_MARKER = ".simscale-site"
"""Left in the output folder, so a rebuild may empty it: MkDocs clears its output folder before writing."""

_NO_MATHJAX = "assets/no-mathjax.js"

_NOT_EXECUTED_NOTE = (
    '<div class="admonition note"><p class="admonition-title">Shown without outputs</p>'
    "<p>This is a quick build (<code>simscale docs --quick</code>): the notebook was not executed, so its "
    "tables and figures are missing. <code>simscale docs</code> executes every notebook.</p></div>"
)

_KERNEL_TIMEOUT_S = 900
"""Per cell: notebook 6 runs the real hub under load; a cell that hangs still ends the build."""

_LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(figures/([^)\s]+)\)")
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$\w])\$(?=\S)([^$\n]+?)(?<=\S)\$(?![\w$])", re.DOTALL)
_NOTEBOOK_LINK = re.compile(r"\]\((\d\d\.\d\d-[\w.-]+)\.ipynb(#[\w-]*)?\)")


@dataclass(frozen=True)
class SiteSources:
    """Where a site's text comes from: a checkout of the repository."""

    root: Path
    """The repository's top folder (holds README.md, docs/, notebooks/, figures/ and simscale/)."""

    @classmethod
    def of_this_checkout(cls) -> SiteSources:
        """The checkout this ``simscale`` package was imported from.

        Raises:
            RuntimeError: simscale was installed without its repository (a wheel has no notebooks).
        """
        root = Path(__file__).resolve().parents[1]
        sources = cls(root)
        missing = [name for name in ("README.md", "docs", "notebooks", "figures") if not (root / name).exists()]
        if missing:
            raise RuntimeError(
                f"simscale docs needs a checkout of the repository, but {root} has no {', '.join(missing)}"
            )
        return sources

    @property
    def notebooks(self) -> list[Path]:
        return sorted((self.root / "notebooks").glob("*.ipynb"))

    @property
    def guide(self) -> list[Path]:
        return sorted((self.root / "docs").glob("*.md"))

    @property
    def figures(self) -> list[Path]:
        return sorted(p for p in (self.root / "figures").iterdir() if p.suffix in (".png", ".svg"))


def build_site(
    out_dir: Path,
    *,
    quick: bool,
    sources: SiteSources | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Build the HTML site into ``out_dir`` and return the path of its home page.

    Args:
        out_dir: where the site goes; created, or emptied if it holds an earlier site.
        quick: execute only :data:`QUICK_NOTEBOOKS` and render the others without outputs (each says so).
        sources: the repository to document; by default the checkout this package comes from.
        log: called with a line per step (the command line prints them).

    Raises:
        ValueError: ``out_dir`` is a non-empty folder that is not an earlier site (it would be emptied).
        RuntimeError: MkDocs or a plugin is missing, a notebook failed, or MkDocs warned (strict build).
    """
    sources = sources or SiteSources.of_this_checkout()
    say = log or (lambda line: None)
    out_dir = out_dir.resolve()
    _check_out_dir(out_dir, sources.root)
    try:
        from mkdocs.commands.build import build
        from mkdocs.config import load_config
        from mkdocs.exceptions import MkDocsException
    except ModuleNotFoundError as error:
        raise RuntimeError(
            f"simscale docs needs MkDocs ({error.name} is missing): install the dev extra, "
            "`.venv/bin/pip install -e '.[dev]'` (or `bash scripts/setup.sh test`)"
        ) from error
    with tempfile.TemporaryDirectory(prefix="simscale-docs-") as staging_name:
        staging = Path(staging_name)
        docs_dir = staging / "docs"
        nav = _stage_pages(sources, docs_dir, quick=quick, say=say)
        config_file = staging / "mkdocs.yml"
        config_file.write_text(json.dumps(_mkdocs_config(sources, docs_dir, nav), indent=2))  # JSON is YAML
        say("building the HTML with MkDocs (strict)")
        try:
            config = load_config(str(config_file), site_dir=str(out_dir), strict=True)
            build(config)
        except MkDocsException as error:  # strict mode reports its warnings above and aborts here
            raise RuntimeError(f"the MkDocs build failed: {error}") from error
    (out_dir / _MARKER).write_text("written by `simscale docs`; the next build empties this folder\n")
    return out_dir / "index.html"


def _check_out_dir(out_dir: Path, root: Path) -> None:
    if out_dir == root.resolve() or out_dir in root.resolve().parents:
        raise ValueError(f"--out must not be the repository or above it, got {out_dir}")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / _MARKER).exists():
        raise ValueError(f"--out {out_dir} is a non-empty folder that simscale docs did not write; choose another")


def _stage_pages(sources: SiteSources, docs_dir: Path, *, quick: bool, say: Callable[[str], None]) -> list[Any]:
    """Lay out every page under ``docs_dir``; return MkDocs' navigation for them."""
    docs_dir.mkdir(parents=True)
    shutil.copytree(sources.root / "figures", docs_dir / "figures")
    (docs_dir / "assets").mkdir()
    (docs_dir / _NO_MATHJAX).write_text("/* formulas are MathML, converted when the site was built */\n")

    readme = (sources.root / "README.md").read_text(encoding="utf-8")
    (docs_dir / "index.md").write_text(_rewrite_links(readme, depth=0), encoding="utf-8")

    guide_nav: list[Any] = []
    (docs_dir / "guide").mkdir()
    for path in sources.guide:
        text = path.read_text(encoding="utf-8")
        (docs_dir / "guide" / path.name).write_text(_rewrite_links(text, depth=1), encoding="utf-8")
        guide_nav.append({_title_of(text, path.stem): f"guide/{path.name}"})

    notebook_nav: list[Any] = []
    (docs_dir / "notebooks").mkdir()
    for path in sources.notebooks:
        execute = not quick or path.name in QUICK_NOTEBOOKS
        say(f"{'executing' if execute else 'staging (not executed)'} {path.name}")
        started = time.monotonic()
        notebook = _staged_notebook(path, docs_dir / "notebooks", execute=execute, package_root=sources.root)
        if execute:
            say(f"  {time.monotonic() - started:.1f} s, {_count_png_outputs(notebook)} static figures")
        notebook_nav.append(f"notebooks/{path.name}")

    (docs_dir / "gallery.md").write_text(_gallery_page(sources, readme), encoding="utf-8")

    api_nav: list[Any] = []
    (docs_dir / "api").mkdir()
    for module in API_MODULES:
        (docs_dir / "api" / f"{module}.md").write_text(f"# `{module}`\n\n::: {module}\n", encoding="utf-8")
        api_nav.append({module: f"api/{module}.md"})

    return [
        {"Home": "index.md"},
        {"Guide": guide_nav},
        {"Notebooks": notebook_nav},
        {"Gallery": "gallery.md"},
        {"API reference": api_nav},
    ]


def _rewrite_links(markdown: str, *, depth: int) -> str:
    """Point the repository-relative links of README.md (depth 0) or docs/*.md (depth 1) at site pages.

    A link to something the site does not hold (a source file, LICENSE) becomes its path in code font,
    so the text still says where to look and the strict build has no broken link to report.
    """
    up = "../" * depth

    def replace(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"[a-z]+:|#", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        repo_path = os.path.normpath(os.path.join("docs", path) if depth else path)
        fragment = f"#{anchor}" if anchor else ""
        if repo_path == "README.md":
            return f"{label}({up}index.md{fragment})"
        if re.fullmatch(r"docs/[^/]+\.md", repo_path):
            return f"{label}({up}guide/{repo_path[5:]}{fragment})"
        if re.fullmatch(r"(figures|notebooks)/[^/]+", repo_path):
            return f"{label}({up}{repo_path}{fragment})"
        text = label.lstrip("!")[1:-1]
        return f"{text} (`{repo_path}`)" if text and text != repo_path else f"`{repo_path}`"

    return _LINK.sub(replace, markdown)


def _title_of(markdown: str, fallback: str) -> str:
    heading = re.search(r"^# (.+)$", markdown, re.MULTILINE)
    return heading.group(1).strip() if heading else fallback.replace("-", " ").replace("_", " ").capitalize()


def _staged_notebook(path: Path, folder: Path, *, execute: bool, package_root: Path) -> Any:
    import nbformat

    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]  # nbformat has no annotations
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            # mkdocs-jupyter renders markdown itself, so links between notebooks are turned into page links here.
            cell.source = _NOTEBOOK_LINK.sub(r"](\1.html\2)", _math_to_mathml(cell.source))
    if not execute:
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(_NOT_EXECUTED_NOTE))  # type: ignore[no-untyped-call]
    elif any(cell.cell_type == "code" for cell in notebook.cells):  # the index has none: no kernel needed
        _execute(notebook, folder, package_root)
    nbformat.write(notebook, folder / path.name)  # type: ignore[no-untyped-call]
    return notebook


def _execute(notebook: Any, folder: Path, package_root: Path) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    # The kernel is a new process: make it import the simscale being documented, not another install.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_root), env.get("PYTHONPATH")]))
    client = NotebookClient(
        notebook,
        timeout=_KERNEL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    try:
        client.execute(env=env)
    except CellExecutionError as error:
        raise RuntimeError(f"a notebook failed while building the site:\n{error}") from error


def _count_png_outputs(notebook: Any) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def _math_to_mathml(markdown: str) -> str:
    """Replace ``$…$`` and ``$$…$$`` formulas by MathML, which browsers draw without a script."""
    if "$" not in markdown:
        return markdown
    from latex2mathml.converter import convert

    def replace(match: re.Match[str]) -> str:
        display, inline = match.group(1), match.group(2)
        try:
            return str(convert(display or inline, display="block" if display else "inline"))
        except Exception:  # an unparsable formula stays as the reader wrote it rather than failing the build
            return match.group(0)

    return _MATH.sub(replace, markdown)


def _gallery_page(sources: SiteSources, readme: str) -> str:
    """Every figure in figures/, its PNG shown (the SVG linked) under a caption.

    The caption is the figure's alt text in the README, where the README shows it, else its file name.
    """
    captions = {Path(name).stem: alt for alt, name in _IMAGE.findall(readme)}
    by_stem: dict[str, list[Path]] = {}
    for path in sources.figures:
        by_stem.setdefault(path.stem, []).append(path)
    lines = [
        "# Gallery",
        "",
        "Every figure in `figures/`, as `simscale figures` regenerates it from fixed-seed simulations "
        "(except `hub-demo.png`, a screenshot that the browser test of `simscale hub demo` takes). "
        "The README explains what each one shows.",
        "",
    ]
    # The README's order first (it tells the story), then any figure it does not show.
    order = [stem for stem in captions if stem in by_stem] + [stem for stem in by_stem if stem not in captions]
    for stem in order:
        files = by_stem[stem]
        caption = captions.get(stem, stem.replace("-", " ").capitalize())
        shown = next((f for f in files if f.suffix == ".png"), files[0])
        links = ", ".join(f'<a href="figures/{f.name}">{f.name}</a>' for f in files)
        lines += [
            f"## {caption}",
            "",
            f'<figure markdown="span">\n  ![{caption}](figures/{shown.name})\n'
            f"  <figcaption>{links}</figcaption>\n</figure>",
            "",
        ]
    return "\n".join(lines)


def _mkdocs_config(sources: SiteSources, docs_dir: Path, nav: list[Any]) -> dict[str, Any]:
    return {
        "site_name": "simscale",
        "site_description": "How real-time hubs scale: a SimPy model and a real asyncio SignalR hub.",
        "docs_dir": str(docs_dir),
        # Plain file names (notebooks/02.00-One-Server.html) are what works when the site is opened from disk.
        "use_directory_urls": False,
        "nav": nav,
        "theme": {
            "name": "material",
            "font": False,  # no Google Fonts: the site must render offline
            "features": ["navigation.sections", "navigation.top", "content.code.copy"],
        },
        "validation": {
            "omitted_files": "warn",
            "absolute_links": "warn",
            "unrecognized_links": "warn",
            "anchors": "warn",
        },
        "markdown_extensions": [
            "admonition",
            "attr_list",
            "md_in_html",
            "tables",
            {"toc": {"permalink": True}},
            "pymdownx.superfences",
            {"pymdownx.highlight": {"use_pygments": True}},
        ],
        "plugins": [
            "search",
            {
                "mkdocstrings": {
                    "handlers": {
                        "python": {
                            "paths": [str(sources.root)],
                            "options": {
                                "docstring_style": "google",
                                "members_order": "source",
                                "show_source": False,
                                "show_root_heading": False,
                                "show_signature_annotations": True,
                                "separate_signature": True,
                                "filters": ["!^_"],
                                "heading_level": 2,
                            },
                        }
                    }
                }
            },
            {
                "mkdocs-jupyter": {
                    "execute": False,  # executed while staging, with the kernel pointed at this checkout
                    "include_source": True,  # a download link for the .ipynb
                    "cache": False,
                    "ignore_h1_titles": False,
                    "custom_mathjax_url": f"../{_NO_MATHJAX}",
                }
            },
        ],
    }


def add_docs_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``simscale docs`` to the command line's sub-commands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "docs",
        help="build the documentation as a static HTML site (guide, notebooks, gallery, API)",
        description=(
            "Build the documentation as a static HTML site that opens without a network: the README and "
            "docs/ as a guide, the notebooks executed with their figures, a gallery of figures/ and an API "
            "reference from the docstrings. Needs the dev extra (MkDocs) and a checkout of the repository."
        ),
        epilog=(
            "Examples:\n"
            "  simscale docs                     # everything, into site/ (a few minutes)\n"
            "  simscale docs --quick --out /tmp/site\n"
            "  chromium site/index.html          # or open it in any browser"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for the site, emptied first if it holds an earlier one (default: site/)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"execute only {', '.join(QUICK_NOTEBOOKS)}; show the other notebooks without outputs (default: off)",
    )
    parser.set_defaults(handler=_docs)
    return parser


def _docs(args: argparse.Namespace) -> int:
    started = time.monotonic()
    home = build_site(args.out, quick=args.quick, log=print)
    print(f"site written in {time.monotonic() - started:.0f} s: open {home}")
    return 0
