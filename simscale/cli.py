"""The ``simscale`` command: simulate presets, run the real hub, load it, draw the figures."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simscale._version import __version__
from simscale.docs_site import add_docs_parser

_COMMAND_MODULES = (
    "simscale.hub.cli",
    "simscale.loadgen.cli",
    "simscale.planning.cli",
    "simscale.report",
    "simscale.validation.cli",
)
"""Modules that add sub-commands: each has ``register(subparsers)``; absent ones are skipped."""

_TABLE_KEYS = (
    ("scenario", "scenario", "{}"),
    ("servers", "servers", "{}"),
    ("clients", "clients", "{:,}"),
    ("connected", "clients_connected", "{:,.0f}"),
    ("never on", "clients_never_connected", "{:,}"),
    ("broadcasts", "broadcasts", "{:,}"),
    ("delivered", "delivered_fraction", "{:.3f}"),
    ("p50 ms", "latency_p50_ms", "{:.2f}"),
    ("p99 ms", "latency_p99_ms", "{:.2f}"),
    ("refused", "connections_refused", "{:,}"),
    ("dropped", "connections_dropped", "{:,}"),
    ("cpu mean", "cpu_utilization_max", "{:.1%}"),
    ("cpu peak", "cpu_utilization_peak", "{:.1%}"),
    ("wall s", "wall_s", "{:.2f}"),
)

_TABLE_NOTE = (
    "\nconnected: mean clients connected when the counted broadcasts were sent; never on: clients that never"
    "\nconnected; delivered: share of the connected clients that got each broadcast; cpu mean / peak: the"
    "\nbusiest server's mean and highest CPU sample over the broadcast phase (warm-up to duration, no drain)."
)


_EXAMPLE_PRESET = "backplane"
"""The preset whose values ``simulate --help`` quotes as examples of "the preset's" default."""

# Plain text: the module docstring's reST markup would show as literal backticks in a terminal.
_DESCRIPTION = """\
Teach and predict how real-time hubs scale: simulate presets with a SimPy model, run a real
SignalR-compatible hub, load it, and compare the two."""
_EPILOG = """\
Examples:
  simscale presets                      the named scenarios
  simscale simulate backplane           simulate one (add --help for its flags)
  simscale demo                         three scenarios side by side
  simscale hub serve --port 5000        a real hub at http://127.0.0.1:5000/chatHub
  simscale loadgen --url http://127.0.0.1:5000/chatHub --clients 100
  simscale calibrate && simscale validate backplane --calibration calibration.json

Each command's own --help lists its flags and their defaults."""


class _ArgumentError(Exception):
    """Bad command-line input (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, no usage dump
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; sub-packages add their own commands through ``register``."""
    parser = _Parser(
        prog="simscale",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"simscale {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _register_model_commands(subparsers)
    add_docs_parser(subparsers)
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name):
                continue  # that part of simscale is not installed in this build
            raise
        module.register(subparsers)
    return parser


def _register_model_commands(subparsers: Any) -> None:
    from simscale.scenarios import preset

    # The help quotes one preset's values, read from the preset itself so the example cannot go stale.
    shown = preset(_EXAMPLE_PRESET)

    def of_preset(value: object) -> str:
        text = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        return f"(default: the preset's, e.g. {text} for {_EXAMPLE_PRESET})"

    presets = subparsers.add_parser(
        "presets",
        help="list the named scenarios, one line each",
        description="List the named scenarios (presets) that `simscale simulate` runs, one line each.",
        epilog="Example:\n  simscale presets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    presets.set_defaults(handler=_presets)

    simulate = subparsers.add_parser(
        "simulate",
        help="simulate a preset scenario",
        description=(
            "Simulate one named scenario with the SimPy model and print its summary as a table (or one\n"
            "JSON object). Every flag overrides one field of the preset; --set reaches any other field\n"
            "and --describe lists them all with unit, default, allowed range and source."
        ),
        epilog=(
            "Examples:\n"
            "  simscale simulate backplane\n"
            "  simscale simulate no-backplane --servers 2 --clients 400 --duration 10 --json\n"
            "  simscale simulate backplane --set backplane_routing=via-backplane --replications 5\n"
            "  simscale simulate single-server --describe"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_argument("preset", help="preset name (see `simscale presets`)")
    simulate.add_argument("--servers", type=int, metavar="N", help=f"hub servers {of_preset(shown.servers)}")
    simulate.add_argument("--clients", type=int, metavar="N", help=f"clients that connect {of_preset(shown.clients)}")
    simulate.add_argument(
        "--broadcast-rate",
        type=float,
        metavar="PER_S",
        dest="broadcast_rate_per_s",
        help=f"broadcasts per second, all senders together {of_preset(shown.broadcast_rate_per_s)}",
    )
    simulate.add_argument(
        "--message-bytes", type=int, metavar="B", help=f"payload of each broadcast {of_preset(shown.message_bytes)}"
    )
    simulate.add_argument(
        "--duration",
        type=float,
        metavar="S",
        dest="duration_s",
        help=f"simulated seconds {of_preset(shown.duration_s)}",
    )
    simulate.add_argument(
        "--warmup",
        type=float,
        metavar="S",
        dest="warmup_s",
        help=(
            f"first seconds not counted {of_preset(shown.warmup_s)}; with --duration alone it is min(5, duration/10)"
        ),
    )
    simulate.add_argument(
        "--replications",
        type=int,
        metavar="N",
        default=1,
        help="runs with independent seeds; above 1 adds 95 percent confidence intervals (default: 1)",
    )
    simulate.add_argument("--seed", type=int, metavar="N", help=f"random seed of the run {of_preset(shown.seed)}")
    simulate.add_argument(
        "--calibration",
        metavar="FILE",
        help="calibration JSON from `simscale calibrate`: model the asyncio hub measured on that machine"
        f" (default: none, the preset's {shown.server_profile} server profile)",
    )
    simulate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="set any scenario field, repeatable; --describe lists the fields (default: none)",
    )
    simulate.add_argument("--json", action="store_true", help="print one JSON object on stdout (default: off, a table)")
    simulate.add_argument(
        "--out", metavar="DIR", help="write the records (CSV) and the summary (JSON) (default: none, write nothing)"
    )
    simulate.add_argument(
        "--describe",
        action="store_true",
        help="list every field: unit, default, range, source; simulate nothing (default: off)",
    )
    simulate.set_defaults(handler=_simulate)

    demo = subparsers.add_parser(
        "demo",
        help="simulate the three seed scenarios, print a table, draw figures",
        description=(
            "Simulate single-server, no-backplane and backplane on their defaults, print one table and\n"
            "what it shows, then regenerate the documentation figures."
        ),
        epilog="Examples:\n  simscale demo\n  simscale demo --no-figures",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--no-figures", action="store_true", help="skip regenerating the figures (default: off)")
    demo.add_argument("--out", metavar="DIR", default="figures", help="where the figures go (default: figures)")
    demo.set_defaults(handler=_demo)


def _presets(args: argparse.Namespace) -> int:
    from simscale.scenarios import PRESETS

    width = max(len(name) for name in PRESETS)
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.summary}")
    return 0


def _scenario_from_args(args: argparse.Namespace) -> Any:
    from simscale.scenarios import parse_field_value, preset

    overrides: dict[str, Any] = {}
    for field in ("servers", "clients", "broadcast_rate_per_s", "message_bytes", "duration_s", "warmup_s", "seed"):
        value = getattr(args, field)
        if value is not None:
            overrides[field] = value
    if args.calibration:
        overrides["server_profile"] = "asyncio-hub"
        overrides["calibration_file"] = args.calibration
    for assignment in args.set:
        name, separator, text = assignment.partition("=")
        if not separator or not name:
            raise ValueError(f"--set takes FIELD=VALUE, got {assignment!r}")
        overrides[name.strip()] = parse_field_value(name.strip(), text)
    if "duration_s" in overrides and "warmup_s" not in overrides:
        # A short run keeps a proportionate warm-up rather than failing on the preset's.
        overrides["warmup_s"] = min(5.0, overrides["duration_s"] / 10)
    return preset(args.preset, **overrides)


def _simulate(args: argparse.Namespace) -> int:
    from simscale.scenarios import describe_fields, replicate, simulate

    scenario = _scenario_from_args(args)
    if args.describe:
        rows = describe_fields(scenario)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        _print_described(rows)
        return 0
    if args.replications < 1:
        raise ValueError(f"--replications must be >= 1, got {args.replications}")
    with _Progress(f"simulating {scenario.name}", enabled=True) as bar:
        result = simulate(scenario, progress=bar.update)
        replication = replicate(scenario, args.replications) if args.replications > 1 else None
    _warn(result.warnings)  # on stderr, so --json stays one object on stdout
    payload = result.to_json_dict()
    if replication is not None:
        payload["replications"] = args.replications
        payload["confidence_intervals"] = replication.intervals.to_dict(orient="records")
    if args.out:
        _write_outputs(Path(args.out), result, payload)
    if args.json:
        print(json.dumps(_json_safe(payload)))
    else:
        _print_table([dataclasses.asdict(result.summary)])
        print(_TABLE_NOTE)
        if replication is not None:
            print(f"\n{args.replications} replications, {replication.confidence:.0%} confidence intervals:")
            print(replication.intervals.to_string(index=False))
        if args.out:
            print(f"\nrecords and summary written to {args.out}")
    return 0


def _print_described(rows: list[dict[str, Any]]) -> None:
    """The fields under their sections: each section's name on a line of its own, then its fields."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        sections.setdefault(row["section"], []).append(row)
    for position, (section, members) in enumerate(sections.items()):
        if position:
            print()
        print(section)
        for row in members:
            unit = f" [{row['unit']}]" if row["unit"] else ""
            print(f"  {row['field']}{unit} = {row['value']!r}  (default {row['default']!r}; {row['allowed']})")
            print(f"      {row['help']}  Source: {row['source']}")


def _write_outputs(directory: Path, result: Any, payload: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for kind, frame in result.frames().items():
        frame.to_csv(directory / f"{kind}.csv", index=False)
    (directory / "summary.json").write_text(json.dumps(_json_safe(payload), indent=2) + "\n")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _print_table(rows: list[dict[str, Any]]) -> None:
    cells = [[title for title, _, _ in _TABLE_KEYS]]
    for row in rows:
        line = []
        for _, key, template in _TABLE_KEYS:
            value = row.get(key)
            line.append("-" if value is None else template.format(value))
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(_TABLE_KEYS))]
    for position, line in enumerate(cells):
        print("  ".join(text.rjust(width) for text, width in zip(line, widths, strict=True)))
        if position == 0:
            print("  ".join("-" * width for width in widths))


def _demo(args: argparse.Namespace) -> int:
    from simscale.scenarios import preset, simulate

    print("simscale demo: the three classic scale-out scenarios, simulated on their defaults\n")
    results = []
    for name in ("single-server", "no-backplane", "backplane"):
        with _Progress(f"simulating {name}", enabled=True) as bar:
            results.append(simulate(preset(name), progress=bar.update))
    _print_table([dataclasses.asdict(result.summary) for result in results])
    print(_TABLE_NOTE)
    for result in results:
        _warn(result.warnings, f"{result.scenario.name}: ")
    single, apart, joined = (result.summary for result in results)
    # tests/test_cli.py checks these relations hold, so the words cannot drift from the numbers.
    print(
        f"\nOne server: delivered {_share(single.delivered_fraction)}, every client is reached."
        f"\n{apart.servers} servers without a backplane: delivered {_share(apart.delivered_fraction)}"
        f" (1/{apart.servers} = {1 / (apart.servers or 1):.3f}), only the sender's server's clients get it."
        f"\n{joined.servers} servers with a Redis backplane: delivered {_share(joined.delivered_fraction)}, everyone"
        f" again, and the backplane\npays in latency: p50 {_ms_text(joined.latency_p50_ms)} against"
        f" {_ms_text(apart.latency_p50_ms)} without it."
    )
    if not args.no_figures:
        try:
            report = importlib.import_module("simscale.report")
        except ModuleNotFoundError:
            return 0
        written = report.render_all(Path(args.out))
        print(f"\nfigures regenerated in {args.out}/ ({len(written)} files)")
    return 0


def _share(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction:.3f}"


def _ms_text(latency_ms: float | None) -> str:
    return "-" if latency_ms is None else f"{latency_ms:.2f} ms"


def _warn(lines: list[str], prefix: str = "") -> None:
    """Warnings on stderr (stdout flushed first, so they follow the table they are about)."""
    sys.stdout.flush()
    for line in lines:
        print(f"{prefix}{line}", file=sys.stderr)


class _Progress:
    """A progress bar on stderr (only when stderr is a terminal): fraction of simulated time done."""

    _WIDTH = 30

    def __init__(self, label: str, *, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self._started = time.monotonic()
        self._last_drawn = -1

    def __enter__(self) -> _Progress:
        self._started = time.monotonic()
        return self

    def update(self, fraction: float) -> None:
        """Redraw the bar at ``fraction`` (0-1) done."""
        percent = int(fraction * 100)
        if not self.enabled or percent == self._last_drawn:
            return
        self._last_drawn = percent
        filled = int(fraction * self._WIDTH)
        elapsed = time.monotonic() - self._started
        bar = "#" * filled + "-" * (self._WIDTH - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {percent:3d}% {elapsed:5.1f} s")
        sys.stderr.flush()

    def __exit__(self, *exc: object) -> None:
        if self.enabled and self._last_drawn >= 0:
            sys.stderr.write("\r" + " " * (len(self.label) + self._WIDTH + 20) + "\r")
            sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn bad input into a one-line error with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ValueError as error:
        print(f"simscale: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simscale: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `simscale simulate X --describe | head`
        sys.stderr.close()
        return 0
    except (OSError, RuntimeError) as error:  # a missing redis-server, a port in use, a hub that won't start
        print(f"simscale: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
