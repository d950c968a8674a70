"""``simscale loadgen``: drive real hubs with many clients and print what they measured."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from simscale.loadgen.config import LoadConfig
from simscale.loadgen.runner import ConnectionFailure, LoadResult, run_load

__all__ = ["config_from_args", "failures_text", "format_text", "parse_delays", "register"]

T = TypeVar("T")


def register(subparsers: Any) -> None:
    """Add ``loadgen`` to the top-level ``simscale`` command."""
    parser = subparsers.add_parser(
        "loadgen",
        help="load-test real hub servers (ChatHub SendMessage broadcasts)",
        description=(
            "Connect --clients clients round-robin over the --url hubs, send SendMessage broadcasts at\n"
            "Poisson times from random clients, and report deliveries and latency. Connections that fail\n"
            "are counted by reason (connection refused, an HTTP status, a handshake error). A client whose\n"
            "connection drops reconnects after each of --reconnect-delays in turn (to another server first)\n"
            "and gives up after the last. The exit status is 1 when no client connected."
        ),
        epilog=(
            "Examples:\n"
            "  simscale hub serve --port 5000 &\n"
            "  simscale loadgen --url http://127.0.0.1:5000/chatHub --clients 100 --broadcast-rate 5\n"
            "  simscale loadgen --url http://127.0.0.1:5001/chatHub --url http://127.0.0.1:5002/chatHub \\\n"
            "      --clients 1000 --duration 30 --protocol messagepack --json\n"
            "  simscale loadgen --url http://127.0.0.1:5000/chatHub --clients 100 --duration 60 \\\n"
            "      --reconnect-delays 0,2,10,30 --reconnect-jitter 0.5"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Values are parsed in config_from_args so that a bad one is a one-line error naming its flag; the
    # defaults shown are LoadConfig's, so help and behaviour cannot disagree.
    defaults = {field.name: field.default for field in dataclasses.fields(LoadConfig)}

    def default(name: str, unit: str = "") -> str:
        value = defaults[name]
        return f"(default: {value:g}{unit})" if isinstance(value, float) else f"(default: {value}{unit})"

    parser.add_argument(
        "--url",
        action="append",
        required=True,
        help="hub URL such as http://127.0.0.1:5000/chatHub, repeatable; server index = order (default: none,"
        " required)",
    )
    parser.add_argument("--clients", required=True, metavar="N", help="number of clients (default: none, required)")
    parser.add_argument(
        "--broadcast-rate",
        default=str(defaults["broadcast_rate_per_s"]),
        metavar="PER_S",
        help=f"broadcasts per second, all senders together {default('broadcast_rate_per_s')}",
    )
    parser.add_argument(
        "--duration",
        default=str(defaults["duration_s"]),
        metavar="S",
        help=f"measured seconds, after the warm-up {default('duration_s', ' s')}",
    )
    parser.add_argument("--protocol", default=defaults["protocol"], help=f"json or messagepack {default('protocol')}")
    parser.add_argument(
        "--message-bytes",
        default=str(defaults["message_bytes"]),
        metavar="B",
        help=f"payload size of each broadcast {default('message_bytes', ' bytes')}",
    )
    parser.add_argument(
        "--warmup",
        default=str(defaults["warmup_s"]),
        metavar="S",
        help=f"first seconds of broadcasts, sent but not counted {default('warmup_s', ' s')}",
    )
    parser.add_argument(
        "--seed", default=str(defaults["seed"]), help=f"random seed (send times and senders) {default('seed')}"
    )
    parser.add_argument(
        "--connect-concurrency",
        default=str(defaults["connect_concurrency"]),
        metavar="N",
        help=f"connection attempts in flight {default('connect_concurrency')}",
    )
    parser.add_argument(
        "--connect-timeout",
        default=str(defaults["connect_timeout_s"]),
        metavar="S",
        help=f"seconds allowed per connection attempt {default('connect_timeout_s', ' s')}",
    )
    parser.add_argument(
        "--drain",
        default=str(defaults["drain_s"]),
        metavar="S",
        help=f"seconds to wait for late deliveries after the last send {default('drain_s', ' s')}",
    )
    parser.add_argument(
        "--scenario", default=defaults["scenario"], help=f"label written into the records {default('scenario')}"
    )
    parser.add_argument(
        "--send-target",
        default=defaults["send_target"],
        help="all (SendMessage), group (JoinGroup, then SendToGroup), user (each client connects as its user,"
        " SendToUser; the hubs need --users-from-tokens) or connection (SendToConnection to a random client)"
        f" {default('send_target')}",
    )
    for flag, name, what in (
        ("--groups", "groups", "groups"),
        ("--group-size", "group_size", "members of each group"),
        ("--groups-per-client", "groups_per_client", "the most groups one client is in"),
        ("--connections-per-user", "connections_per_user", "connections of one user (with --send-target user)"),
    ):
        parser.add_argument(flag, default=str(defaults[name]), metavar="N", help=f"{what} {default(name)}")
    parser.add_argument(
        "--join-settle",
        default=str(defaults["join_settle_s"]),
        metavar="S",
        help=f"seconds to wait after the JoinGroup calls {default('join_settle_s', ' s')}",
    )
    delays = ",".join(f"{delay:g}" for delay in cast(tuple[float, ...], defaults["reconnect_delays_s"]))
    parser.add_argument(
        "--reconnect-delays",
        default=delays,
        metavar="S1,S2,…",
        help=f"seconds before each reconnect attempt after a drop; after the last the client gives up "
        f"(default: {delays})",
    )
    parser.add_argument(
        "--reconnect-jitter",
        default=str(defaults["reconnect_jitter"]),
        metavar="F",
        help=f"each reconnect delay x U(1-F, 1+F), 0 to 1 {default('reconnect_jitter')}",
    )
    parser.add_argument("--access-token", default=None, help="bearer token for every client (default: none, anonymous)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text (default: off)")
    parser.set_defaults(handler=_run)


def _parse(convert: Callable[[str], T], text: str, flag: str) -> T:
    try:
        return convert(text)
    except ValueError:
        raise ValueError(f"{flag} must be {'an integer' if convert is int else 'a number'}, got {text!r}") from None


def parse_delays(text: str, flag: str = "--reconnect-delays") -> tuple[float, ...]:
    """``"0,2,10,30"`` → ``(0.0, 2.0, 10.0, 30.0)``; ValueError naming ``flag`` if a part is not a number.

    Example:

        >>> from simscale.loadgen.cli import parse_delays
        >>> parse_delays("0, 2,10,30")
        (0.0, 2.0, 10.0, 30.0)
        >>> parse_delays("0,soon")
        Traceback (most recent call last):
        ...
        ValueError: --reconnect-delays takes seconds separated by commas, got '0,soon'
    """
    parts = [part.strip() for part in text.split(",")]
    try:
        delays = tuple(float(part) for part in parts)
    except ValueError:
        raise ValueError(f"{flag} takes seconds separated by commas, got {text!r}") from None
    if any(not math.isfinite(delay) for delay in delays):
        raise ValueError(f"{flag} takes finite seconds, got {text!r}")
    return delays


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    """The :class:`LoadConfig` for parsed ``loadgen`` arguments.

    Raises:
        ValueError: a flag's value is malformed or out of range (the message names the flag).
    """
    return LoadConfig(
        urls=tuple(args.url),
        clients=_parse(int, args.clients, "--clients"),
        broadcast_rate_per_s=_parse(float, args.broadcast_rate, "--broadcast-rate"),
        duration_s=_parse(float, args.duration, "--duration"),
        protocol=args.protocol,
        message_bytes=_parse(int, args.message_bytes, "--message-bytes"),
        warmup_s=_parse(float, args.warmup, "--warmup"),
        seed=_parse(int, args.seed, "--seed"),
        scenario=args.scenario,
        connect_concurrency=_parse(int, args.connect_concurrency, "--connect-concurrency"),
        connect_timeout_s=_parse(float, args.connect_timeout, "--connect-timeout"),
        drain_s=_parse(float, args.drain, "--drain"),
        access_token=args.access_token,
        send_target=args.send_target,
        groups=_parse(int, args.groups, "--groups"),
        group_size=_parse(int, args.group_size, "--group-size"),
        groups_per_client=_parse(int, args.groups_per_client, "--groups-per-client"),
        join_settle_s=_parse(float, args.join_settle, "--join-settle"),
        reconnect_delays_s=parse_delays(args.reconnect_delays),
        reconnect_jitter=_parse(float, args.reconnect_jitter, "--reconnect-jitter"),
        connections_per_user=_parse(int, args.connections_per_user, "--connections-per-user"),
    )


def _format(value: Any, unit: str = "", digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def format_text(result: LoadResult) -> str:
    """A few human-readable lines."""
    s = result.summary
    document = result.to_json_dict()
    return "\n".join(
        [
            f"clients: {s.clients} requested, {result.connected_clients} connected, "
            f"{s.connections_refused} refused, {s.connections_dropped} dropped",
            *([failures_text(result.connection_failures)] if result.connection_failures else []),
            f"broadcasts: {s.broadcasts} in {_format(s.duration_s, ' s', 1)} ({result.send_failures} failed sends)",
            f"deliveries: {s.deliveries} ({_format(s.deliveries_per_s, '/s', 1)}), "
            f"delivered fraction {_format(s.delivered_fraction, '', 4)}",
            f"latency: p50 {_format(s.latency_p50_ms, ' ms')}, p99 {_format(s.latency_p99_ms, ' ms')}",
            f"load generator: {_format(result.loadgen_cpu_s, ' s CPU', 2)} over {_format(s.wall_s, ' s wall', 2)}"
            f" ({_format(document['loadgen_cpu_utilization'], '', 2)} of one core)",
        ]
    )


def failures_text(failures: Sequence[ConnectionFailure]) -> str:
    """One line: ``3 connections failed: 2 connection refused (127.0.0.1:9), 1 HTTP 404 from /x/negotiate``."""
    total = sum(failure.clients for failure in failures)
    kinds = ", ".join(f"{failure.clients} {failure.detail}" for failure in failures)
    return f"{total} connection{'' if total == 1 else 's'} failed: {kinds}"


def _run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = asyncio.run(run_load(config))
    if args.json:
        print(json.dumps(result.to_json_dict()))
    else:
        print(format_text(result))
    sys.stdout.flush()
    return 0 if result.connected_clients else 1
