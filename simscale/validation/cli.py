"""``simscale calibrate`` and ``simscale validate``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``calibrate`` and ``validate`` commands."""
    calibrate = subparsers.add_parser(
        "calibrate",
        help="measure the real hub's costs on this machine",
        description=(
            "Run the real asyncio hub on this machine under a short load and fit the model's costs to it\n"
            "(CPU per invocation, per recipient and per handshake, memory per connection, the backplane's\n"
            "latency, the load generator's own costs), write them to a file and print them.\n"
            "`simscale simulate --calibration FILE` and `simscale validate --calibration FILE` read it."
        ),
        epilog=("Examples:\n  simscale calibrate\n  simscale calibrate --connections 600 --out /tmp/calibration.json"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    calibrate.add_argument(
        "--out", metavar="FILE", default="calibration.json", help="where to write it (default: calibration.json)"
    )
    calibrate.add_argument(
        "--connections", type=int, default=300, metavar="N", help="clients to measure with, 10 to 1,000 (default: 300)"
    )
    calibrate.set_defaults(handler=_calibrate)

    validate = subparsers.add_parser(
        "validate",
        help="the model against the real hub, side by side",
        description=(
            "Run a preset for real (hub servers and the load generator on this machine) and in the model\n"
            "at several broadcast rates, then print both side by side with a verdict per metric\n"
            "(delivered fraction, latency, throughput, CPU, memory; for small-groups and big-groups also\n"
            "the backplane messages each server received, against the hub's own counter).\n"
            "web-traffic-shared instead measures GET /busy latency with and without a broadcast load, in one\n"
            "hub process and in separate processes, beside the model's (verdict on web_latency_p50_ms).\n"
            "reconnect-storm: hub servers joined by Redis under a broadcast load; one hub process is killed\n"
            "(SIGKILL) and its clients reconnect to the survivors on the reconnect delays; compares recovery_s\n"
            "(until 99 % are back), peak_handshakes_per_s on the survivors and broadcasts_lost in the gap."
        ),
        epilog=(
            "Examples:\n"
            "  simscale validate single-server\n"
            "  simscale validate backplane --calibration calibration.json --broadcast-rates 5,10,20\n"
            "  simscale validate no-backplane --json --out /tmp/validation\n"
            "  simscale validate small-groups --calibration calibration.json\n"
            "  simscale validate web-traffic-shared --broadcast-rates 20 --out /tmp/web\n"
            "  simscale validate reconnect-storm --calibration calibration.json --reconnect-jitter 0.5 --json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument(
        "preset",
        help="single-server, no-backplane, backplane, small-groups, big-groups, web-traffic-shared or reconnect-storm",
    )
    validate.add_argument(
        "--servers",
        type=int,
        metavar="N",
        help="hub servers, 1 or 2 (default: 1 for single-server, else 2; reconnect-storm: 2 to 4, default 3)",
    )
    validate.add_argument(
        "--clients",
        type=int,
        metavar="N",
        help="clients (default: 3 x the calibration's connections, e.g. 900; reconnect-storm: 600)",
    )
    validate.add_argument(
        "--broadcast-rates",
        metavar="R1,R2,…",
        help="broadcasts per second to measure at (default: 0.25, 0.5, 0.8, 1.2 and 1.8 x the model's saturation rate; "
        "reconnect-storm: one rate, default 2)",
    )
    validate.add_argument("--calibration", metavar="FILE", help="a calibration file (default: none, calibrate first)")
    validate.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="measured seconds per rate (default: 8 s; 30 s for reconnect-storm)",
    )
    validate.add_argument("--seed", type=int, default=0, help="random seed of both runs (default: 0)")
    validate.add_argument("--json", action="store_true", help="print one JSON object on stdout (default: off, a table)")
    validate.add_argument(
        "--out",
        metavar="DIR",
        help="write comparisons.csv, calibration.json and the comparison figure (default: none, write nothing)",
    )
    validate.add_argument(
        "--reconnect-delays",
        metavar="S1,S2,…",
        help="reconnect-storm: seconds before each reconnect attempt (default: the preset's 10,10,30,30,30)",
    )
    validate.add_argument(
        "--reconnect-jitter", metavar="F", help="reconnect-storm: each delay x U(1-F, 1+F) (default: the preset's 0)"
    )
    validate.set_defaults(handler=_validate)


_DRIFT_WARNING = 0.10
"""Tell the user when the machine ran this much faster or slower than at calibration."""


def _calibrate(args: argparse.Namespace) -> int:
    from simscale.scenarios.calibration import calibrated_fields, save_calibration
    from simscale.validation.calibrate import calibrate

    calibration = calibrate(args.connections)
    digest = save_calibration(calibration, args.out)
    print(f"calibration written to {args.out} (sha256 {digest[:12]}…)")
    for name in calibrated_fields(include_loadgen=True):
        print(f"  {name:<36} {getattr(calibration, name):.4g}")
    return 0


def _rates(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--broadcast-rates takes numbers separated by commas, got {text!r}") from None
    if not rates or any(not math.isfinite(rate) or rate <= 0 for rate in rates):
        raise ValueError(f"--broadcast-rates must be positive numbers, got {text!r}")
    return rates


def _validate(args: argparse.Namespace) -> int:
    from simscale.scenarios.calibration import load_calibration
    from simscale.validation.validate import VALIDATED_PRESETS, validate

    if args.duration is None and args.preset != "reconnect-storm":
        args.duration = 8.0  # the storm's default is its own (it must outlast the reconnect delays)
    if args.preset == "web-traffic-shared":
        return _validate_web(args)
    if args.preset == "reconnect-storm":
        from simscale.validation.reconnect import run_command

        return run_command(args)
    if args.preset not in VALIDATED_PRESETS:
        raise ValueError(f"validate takes one of {', '.join(VALIDATED_PRESETS)}, got {args.preset!r}")
    if args.duration <= 0:
        raise ValueError(f"--duration must be > 0, got {args.duration}")
    calibration = load_calibration(args.calibration) if args.calibration else None
    result = validate(
        args.preset,
        servers=args.servers,
        clients=args.clients,
        rates_per_s=_rates(args.broadcast_rates),
        calibration=calibration,
        duration_s=args.duration,
        seed=args.seed,
    )
    if args.out:
        _write(Path(args.out), result)
    if args.json:
        print(json.dumps(result.to_json_dict()))
    else:
        import pandas as pd

        with pd.option_context("display.width", 140, "display.max_rows", 200):
            print(result.comparisons.to_string(index=False))
        judged = result.to_json_dict()["verdict"]
        words = ", ".join(f"{name} {entry['verdict']}" for name, entry in judged["metrics"].items())
        print(f"\n{args.preset}: validated in {result.wall_s:.0f} s; {judged['overall']} ({words})")
        host = result.to_json_dict()["host"]
        if host is not None:
            placed = (
                f"hubs on cores {host['hub_cores']}, load generator on {host['loadgen_cores']}"
                if host["hub_cores"] is not None
                else "not pinned (one core: everything takes turns)"
            )
            print(
                f"host: {host['cores']} cores, time slice {host['time_slice_s'] * 1e3:.2f} ms, "
                f"parallel speed {host['parallel_speed']:.2f}, other work's share of the hub cores "
                f"{host['hub_share'] or 0:.2f} and of the load generator's {host['loadgen_share'] or 0:.2f}; {placed}"
            )
    drift = result.machine_speed_drift
    if drift is not None and abs(drift) > _DRIFT_WARNING:
        # Stderr, so that --json output stays one JSON document.
        print(
            f"note: the load generator needed {abs(drift):.0%} {'more' if drift > 0 else 'less'} CPU for its work "
            "than at calibration: this machine's speed changed in between, and predictions near saturation "
            "are off by at least as much",
            file=sys.stderr,
        )
    return 0


def _validate_web(args: argparse.Namespace) -> int:
    """Web-request latency on the real hub (one process, separate processes) beside the model's."""
    from simscale.scenarios.calibration import load_calibration
    from simscale.validation.web import WebLoad, validate_web_traffic

    if args.servers is not None:
        raise ValueError("--servers does not apply to web-traffic-shared (its layouts fix the processes)")
    rates = _rates(args.broadcast_rates)
    if rates is not None and len(rates) != 1:
        raise ValueError(f"web-traffic-shared takes one broadcast rate, got {args.broadcast_rates!r}")
    load = WebLoad(
        clients=args.clients or 200,
        duration_s=args.duration,
        **({"broadcast_rate_per_s": rates[0]} if rates else {}),
    )
    calibration = load_calibration(args.calibration) if args.calibration else None
    result = validate_web_traffic(load, seed=args.seed, calibration=calibration)
    if args.out:
        _write_web(Path(args.out), result)
    if args.json:
        print(json.dumps(result.to_json_dict()))
    else:
        import pandas as pd

        with pd.option_context("display.width", 140):
            print(result.comparisons.to_string(index=False))
        judged = result.to_json_dict()["verdict"]
        words = ", ".join(f"{name} {entry['verdict']}" for name, entry in judged["metrics"].items())
        print(f"\nweb-traffic-shared: validated in {result.wall_s:.0f} s; {judged['overall']} ({words})")
    return 0


def _write_web(directory: Path, result: Any) -> None:
    from simscale.figures.export import export_figures
    from simscale.figures.validation import web_validation_figure

    directory.mkdir(parents=True, exist_ok=True)
    result.comparisons.to_csv(directory / "comparisons.csv", index=False)
    report = export_figures({f"validation-{result.scenario}": web_validation_figure(result.comparisons)}, directory)
    if report.message:
        print(report.message, file=sys.stderr)  # stdout may be the one JSON document


def _write(directory: Path, result: Any) -> None:
    from simscale.figures.export import export_figures
    from simscale.figures.validation import validation_figure
    from simscale.scenarios.calibration import save_calibration

    directory.mkdir(parents=True, exist_ok=True)
    result.comparisons.to_csv(directory / "comparisons.csv", index=False)
    save_calibration(result.calibration, directory / "calibration.json")
    figure = validation_figure(result.comparisons, scenario=result.scenario)
    report = export_figures({f"validation-{result.scenario}": figure}, directory)
    if report.message:
        print(report.message)
