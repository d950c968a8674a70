"""The committed figures are what the current code draws: regenerating them changes nothing.

A model change that moves a documentation figure must come with the regenerated files
(``simscale figures``), or this fails.
"""

from __future__ import annotations

from pathlib import Path

from simscale.report import render_all

COMMITTED = Path(__file__).resolve().parents[2] / "figures"


def test_regenerated_svgs_match_the_committed_ones(tmp_path: Path) -> None:
    written = render_all(tmp_path)
    fresh = sorted(path.name for path in written if path.suffix == ".svg")
    committed = sorted(path.name for path in COMMITTED.glob("*.svg"))
    assert fresh == committed
    stale = [name for name in fresh if (tmp_path / name).read_bytes() != (COMMITTED / name).read_bytes()]
    assert not stale, f"figures out of date (run `simscale figures`): {stale}"
    for name in fresh:
        assert (COMMITTED / name.replace(".svg", ".png")).stat().st_size > 10_000
