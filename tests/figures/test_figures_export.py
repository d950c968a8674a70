"""Export: byte-identical re-renders, SVG id normalisation, and the HTML fallback without a browser."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import plotly.graph_objects as go
import pytest

from simscale import report
from simscale.figures import BROWSER_INSTALL_HINT, export_figures, find_browser, house_layout, normalise_svg

needs_browser = pytest.mark.skipif(find_browser() is None, reason="no Chrome/Chromium for kaleido")


def _small_figure() -> go.Figure:
    figure = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="a line"))
    return house_layout(figure, title="a small figure", width_px=400, height_px=300)


def test_normalise_svg_replaces_the_random_id_everywhere() -> None:
    def svg(uid: str) -> str:
        clip = f'<clipPath id="clip{uid}xyplot"/>'
        return f'<svg><defs id="defs-{uid}">{clip}</defs><g clip-path="url(#clip{uid}xy)"/></svg>'

    first, second = normalise_svg(svg("1a8303"), "x"), normalise_svg(svg("43d55d"), "x")
    assert first == second
    assert "1a8303" not in first
    assert normalise_svg(svg("1a8303"), "y") != first  # ids stay distinct between figures


@needs_browser
def test_two_renders_are_byte_identical(tmp_path: Path) -> None:
    for run in ("one", "two"):
        report_ = export_figures({"small": _small_figure()}, tmp_path / run)
        assert report_.message is None
        assert [path.name for path in report_.written] == ["small.png", "small.svg"]
    for name in ("small.png", "small.svg"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    svg = (tmp_path / "one" / "small.svg").read_text()
    assert "DejaVu Sans" in svg


def test_without_a_browser_html_is_written_and_the_fix_is_named(tmp_path: Path) -> None:
    result = export_figures({"small": _small_figure()}, tmp_path, browser=False)
    assert [path.name for path in result.written] == ["small.html"]
    assert result.message == BROWSER_INSTALL_HINT
    assert "apt-get install chromium" in BROWSER_INSTALL_HINT
    html = (tmp_path / "small.html").read_text()
    assert "simscale-small" in html and "plotly" in html


def test_figures_command_reports_the_missing_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(report, "build_figures", lambda: {"small": _small_figure()})
    monkeypatch.setattr("simscale.figures.export.find_browser", lambda: None)
    exit_code = report._figures_command(argparse.Namespace(out=str(tmp_path), notebooks=None))
    assert exit_code == 0
    assert (tmp_path / "small.html").exists()
    assert "apt-get install chromium" in capsys.readouterr().err


def test_figures_module_never_imports_the_simulator() -> None:
    code = (
        "import sys, simscale.figures\n"
        "bad = sorted(m for m in sys.modules if m == 'simpy' or m.startswith('simpy.')"
        " or m.startswith('simscale.model') or m.startswith('simscale.scenarios'))\n"
        "print(','.join(bad))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == ""


@needs_browser
@pytest.mark.slow
def test_figures_command_writes_every_figure(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "simscale.cli", "figures", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr
    expected = sorted(f"{name}.{ext}" for name in report.FIGURE_NAMES for ext in ("png", "svg"))
    assert sorted(path.name for path in tmp_path.iterdir()) == expected
    committed = Path(__file__).resolve().parents[2] / "figures"
    for name in report.FIGURE_NAMES:
        assert (committed / f"{name}.svg").exists(), f"figures/{name}.svg is not committed"


def test_committed_svgs_use_one_font_family_and_stable_ids() -> None:
    committed = Path(__file__).resolve().parents[2] / "figures"
    for name in report.FIGURE_NAMES:
        svg = (committed / f"{name}.svg").read_text(encoding="utf-8")
        families = set(re.findall(r"font-family: ([^;\"]+)", svg))
        assert families == {"'DejaVu Sans'"}, f"{name}.svg uses {families}"
        assert normalise_svg(svg, name) == svg, f"{name}.svg still carries a random plotly id"


def test_figures_command_defaults_to_the_figures_directory() -> None:
    from simscale.cli import build_parser

    args = build_parser().parse_args(["figures"])
    assert args.out == "figures"
    assert args.handler is report._figures_command


def test_public_api_is_pinned() -> None:
    import simscale.figures

    assert sorted(simscale.figures.__all__) == [
        "BROWSER_INSTALL_HINT",
        "ExportReport",
        "FONT_FAMILY",
        "OCCUPANCY_TRACE",
        "TRACE_CLIENTS_MISSED",
        "TRACE_CLIENTS_REACHED",
        "TRACE_SERVERS",
        "choose_broadcast",
        "delivered_fraction_figure",
        "export_figures",
        "find_browser",
        "group_fanout_figure",
        "hosting_comparison_figure",
        "house_layout",
        "latency_distribution_figure",
        "normalise_svg",
        "notebook_setup",
        "published_capacity_figure",
        "reached_servers",
        "scaling_criteria_figure",
        "service_topology_figure",
        "topology_figure",
    ]
    for name in simscale.figures.__all__:
        assert hasattr(simscale.figures, name), name


def test_find_browser_honours_browser_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("BROWSER_PATH", str(fake))
    assert find_browser() == fake
