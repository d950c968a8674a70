"""``simscale plan``: the smallest deployment for a load, which limit binds, and the search behind it.

Exit status: 0 with an answer, 1 when no deployment within the limits carries the load (the reason
on one line), 2 for bad input (one line naming it), as for every ``simscale`` command.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, TextIO

from simscale.planning.executors import default_workers
from simscale.planning.planner import AZURE_PRESET, BASE_PRESET
from simscale.planning.request import NoDeploymentFits, PlanRequest

__all__ = ["register"]

_DEFAULTS = PlanRequest(clients=1, broadcast_rate_per_s=1.0)
"""The request's own defaults, quoted in the help so it cannot go stale."""

_EPILOG = """\
Examples:
  simscale plan --clients 60000 --broadcast-rate 30 --message-bytes 200 --latency-p99-ms 50 --cpu-headroom 0.6
  simscale plan --clients 100000 --broadcast-rate 10 --json --out plan/
  simscale plan --clients 5000 --broadcast-rate 20 --backplane none
  simscale plan --clients 6000 --broadcast-rate 200 --send-target group --group-size 10
  simscale plan --clients 5000 --broadcast-rate 1 --hosting azure-signalr
  simscale plan --clients 100000 --broadcast-rate 10 --scheduler tcp://127.0.0.1:8786

The answer: every client connected (none refused or dropped), p99 at or under the target, the
busiest server's CPU over the busy period at or under the headroom, Redis at or under 70 % busy.
Binding constraints: ports, connection_limit, threads, cpu, memory, backplane, latency,
service_units. Exit status 1: no deployment within the limits fits (the reason is printed)."""


def register(subparsers: Any) -> None:
    """Add ``plan`` to the top-level ``simscale`` command."""
    from simscale.scenarios import preset

    shown = preset(BASE_PRESET)

    def of_preset(value: object) -> str:
        text = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        return f"(default: the {BASE_PRESET} preset's, {text})"

    parser = subparsers.add_parser(
        "plan",
        help="how many servers a load needs, and which limit binds",
        description=(
            "Find the smallest deployment that carries a load: closed forms (ports, CPU per delivery,\n"
            "Erlang C, Pollaczek-Khinchine) bound the range, then replicated simulations of the sizes\n"
            "near it decide, locally in processes or on a Dask cluster. Prints each size tried with its\n"
            f"binding constraint. What the flags do not say comes from the {BASE_PRESET} preset."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--clients",
        type=int,
        required=True,
        metavar="N",
        help="clients that must all stay connected (default: none, required)",
    )
    parser.add_argument(
        "--broadcast-rate",
        type=float,
        required=True,
        metavar="PER_S",
        dest="broadcast_rate_per_s",
        help="broadcasts per second, all senders together (default: none, required)",
    )
    parser.add_argument(
        "--message-bytes", type=int, metavar="B", help=f"payload of each broadcast {of_preset(shown.message_bytes)}"
    )
    parser.add_argument(
        "--send-target",
        choices=("all", "group"),
        default=_DEFAULTS.send_target,
        help="who receives each send: every client, or one group (default: %(default)s)",
    )
    parser.add_argument(
        "--group-size", type=int, metavar="G", help="clients per group, with --send-target group (default: none)"
    )
    parser.add_argument(
        "--latency-p99-ms",
        type=float,
        metavar="MS",
        default=_DEFAULTS.latency_p99_ms,
        help="send-to-receive p99 target (default: %(default)g)",
    )
    parser.add_argument(
        "--cpu-headroom",
        type=float,
        metavar="F",
        default=_DEFAULTS.cpu_headroom,
        help="highest mean CPU of the busiest server, a fraction in (0, 1] (default: %(default)g)",
    )
    parser.add_argument(
        "--hosting",
        choices=("self-hosted", "azure-signalr"),
        default=_DEFAULTS.hosting,
        help="own app servers, or Azure SignalR Service units (default: %(default)s)",
    )
    parser.add_argument(
        "--backplane",
        choices=("redis", "none"),
        default=_DEFAULTS.backplane,
        help="what joins the servers; none plans one server at most (default: %(default)s)",
    )
    parser.add_argument(
        "--cores-per-server",
        type=int,
        metavar="C",
        help=f"cores of each app server {of_preset(shown.cores_per_server)}",
    )
    parser.add_argument(
        "--proxy-addresses",
        type=int,
        metavar="N",
        help=f"proxy source addresses toward each backend {of_preset(shown.proxy_addresses)}",
    )
    parser.add_argument(
        "--max-servers",
        type=int,
        metavar="N",
        default=_DEFAULTS.max_servers,
        help="the largest deployment considered (default: %(default)s)",
    )
    parser.add_argument(
        "--replications",
        type=int,
        metavar="K",
        default=_DEFAULTS.replications,
        help="simulations per size, independent seeds; 2+ give 95 %% intervals (default: %(default)s)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="S",
        dest="duration_s",
        help=f"simulated seconds per run {of_preset(shown.duration_s)}",
    )
    parser.add_argument("--seed", type=int, metavar="N", help=f"seed of the first replication {of_preset(shown.seed)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (default: off, a table)")
    parser.add_argument(
        "--out", metavar="DIR", help="write the candidates (CSV), the JSON and a figure of the search (default: none)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="K",
        default=default_workers(),
        help="local worker processes for the simulations (default: %(default)s, the cores)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a dask.distributed scheduler, tcp://HOST:PORT, instead of local processes (default: none)",
    )
    parser.set_defaults(handler=_run)


class ProgressBar:
    """Runs done out of runs planned, redrawn in place on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.enabled = stream.isatty()

    def __call__(self, done: int, planned: int) -> None:
        if not self.enabled:
            return
        filled = self.width * done // max(planned, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rplan: simulating [{bar}] {done}/{planned} runs")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _base(args: argparse.Namespace) -> Any:
    from simscale.scenarios import preset

    changes: dict[str, Any] = {}
    if args.proxy_addresses is not None:
        changes["proxy_addresses"] = args.proxy_addresses
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.duration_s is not None:
        changes["duration_s"] = args.duration_s
        changes["warmup_s"] = min(5.0, args.duration_s / 10)
    return preset(AZURE_PRESET if args.hosting == "azure-signalr" else BASE_PRESET, **changes)


_FLAGS = {
    "clients": "--clients",
    "broadcast_rate_per_s": "--broadcast-rate",
    "message_bytes": "--message-bytes",
    "group_size": "--group-size",
    "latency_p99_ms": "--latency-p99-ms",
    "cpu_headroom": "--cpu-headroom",
    "cores_per_server": "--cores-per-server",
    "replications": "--replications",
    "max_servers": "--max-servers",
}


def _in_flag_terms(message: str) -> str:
    """A request's error, naming the flag instead of the field (``--clients must be …``)."""
    field, _, rest = message.partition(" ")
    return f"{_FLAGS[field]} {rest}" if field in _FLAGS else message


def _run(args: argparse.Namespace) -> int:
    from simscale.planning.executors import open_executor
    from simscale.planning.planner import plan

    request_args = {
        "clients": args.clients,
        "broadcast_rate_per_s": args.broadcast_rate_per_s,
        "message_bytes": args.message_bytes,
        "send_target": args.send_target,
        "group_size": args.group_size,
        "latency_p99_ms": args.latency_p99_ms,
        "cpu_headroom": args.cpu_headroom,
        "hosting": args.hosting,
        "backplane": args.backplane,
        "cores_per_server": args.cores_per_server,
        "replications": args.replications,
        "max_servers": args.max_servers,
    }
    # Validate before any process or cluster connection starts: bad input fails fast, on one line.
    try:
        PlanRequest(**request_args).check_supported()
    except ValueError as error:
        raise ValueError(_in_flag_terms(str(error))) from None
    base = _base(args)
    if args.scheduler is not None and not args.scheduler.strip():
        raise ValueError("--scheduler needs an address, e.g. tcp://127.0.0.1:8786")
    bar = ProgressBar(sys.stderr)
    try:
        with open_executor(args.workers, args.scheduler) as executor:
            answer = plan(**request_args, base=base, executor=executor, progress=bar)
    except NoDeploymentFits as verdict:
        bar.close()
        if args.json:
            print(json.dumps({"servers": None, "proxy_addresses": None, "service_units": None,
                              "binding_constraint": verdict.reason.split(":", 1)[0], "reason": verdict.reason,
                              "candidates": []}))  # fmt: skip
        print(f"simscale plan: no deployment fits: {verdict.reason}", file=sys.stderr)
        return 1
    bar.close()
    if args.out:
        written = answer.write(Path(args.out))
        print(f"wrote {', '.join(str(path) for path in written)}", file=sys.stderr)
    if args.json:
        print(json.dumps(answer.to_json_dict()))
    else:
        _print_table(answer)
    return 0


_COLUMNS = (
    ("servers", "servers", "{:d}"),
    ("meets", "meets", "{}"),
    ("binds on", "binding_constraint", "{}"),
    ("p99 ms", "latency_p99_ms", "{:.1f}"),
    ("p99 95% CI", None, ""),
    ("cpu", "cpu_utilization_max", "{:.0%}"),
    ("cpu est.", "cpu_utilization_estimate", "{:.0%}"),
    ("connected", "clients_connected", "{:,.0f}"),
    ("refused", "connections_refused", "{:,d}"),
    ("dropped", "connections_dropped", "{:,d}"),
)


def _print_table(answer: Any) -> None:
    rows = []
    for row in answer.candidates.to_dict(orient="records"):
        cells = []
        for _, key, pattern in _COLUMNS:
            if key is None:
                low, high = row["latency_p99_ms_ci_low"], row["latency_p99_ms_ci_high"]
                cells.append("" if math.isnan(low) else f"{low:.1f}-{high:.1f}")
                continue
            value = row[key]
            is_nan = isinstance(value, float) and math.isnan(value)
            cells.append("n/a" if is_nan else pattern.format(int(value) if pattern.endswith("d}") else value))
        rows.append(cells)
    headers = [title for title, _, _ in _COLUMNS]
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) for i in range(len(headers))]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for cells in rows:
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    addresses = f", {answer.proxy_addresses} proxy address(es) per backend" if answer.proxy_addresses else ""
    units = f" behind {answer.service_units} Azure SignalR Service unit(s)" if answer.service_units else ""
    cost = float(answer.chosen()["cost_per_day_usd"])
    priced = "" if math.isnan(cost) else f"; {cost:,.2f} USD/day"
    print(f"\nanswer: {answer.servers} server(s){units}{addresses}; binding constraint: {answer.binding_constraint}"
          f"{priced}")  # fmt: skip
