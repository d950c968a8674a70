"""The scenario: one frozen, validated dataclass that says everything a run needs.

Every field carries its unit, allowed range and the source of its default in ``metadata``, so
``simscale simulate PRESET --describe`` and the notebooks can show where each number comes from.
A bad value raises ``ValueError`` naming the field and what is allowed, at construction.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "BackplaneKind",
    "ClientHostKind",
    "LoadBalancerPolicy",
    "MethodKind",
    "Scenario",
    "ServerProfile",
    "describe_fields",
    "parse_field_value",
]

ServerProfile = Literal["aspnetcore", "asyncio-hub"]
LoadBalancerPolicy = Literal["round-robin", "least-connections", "sticky-ip"]
BackplaneKind = Literal["none", "redis"]
MethodKind = Literal["async", "blocking", "sync-over-async"]
RoutingModeName = Literal["direct-local", "via-backplane"]
ClientHostKind = Literal["free", "one-loop"]

_REF = "shared/REFERENCE.md"


def _field(
    default: Any,
    *,
    unit: str = "",
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    source: str,
    help: str,
) -> Any:
    """A dataclass field with the metadata that validation and ``--describe`` read."""
    metadata = {"unit": unit, "low": low, "high": high, "low_open": low_open, "source": source, "help": help}
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole run: topology, load, server profile, ports, backplane and measurement settings."""

    # --- the run -------------------------------------------------------------------------------
    name: str = _field("custom", source="user", help="Scenario name, carried into every record.")
    servers: int = _field(1, unit="servers", low=1, high=10_000, source="user", help="Hub servers.")
    clients: int = _field(
        1_000, unit="clients", low=1, high=10_000_000, source="user", help="Clients that try to hold a connection."
    )
    duration_s: float = _field(
        60.0,
        unit="s",
        low=0.0,
        low_open=True,
        high=86_400.0,
        source="user",
        help="Simulated time during which broadcasts are sent.",
    )
    warmup_s: float = _field(
        5.0,
        unit="s",
        low=0.0,
        high=86_400.0,
        source="user",
        help="Broadcasts sent before this are not counted (must be < duration_s).",
    )
    drain_s: float = _field(
        5.0,
        unit="s",
        low=0.0,
        high=3_600.0,
        source="user",
        help="Extra simulated time after duration_s for deliveries in flight.",
    )
    seed: int = _field(0, unit="", low=0, high=2**63 - 1, source="user", help="Seed of the run's own random generator.")
    sample_interval_s: float = _field(
        1.0, unit="s", low=0.0, low_open=True, high=3_600.0, source="user", help="Interval between resource samples."
    )

    # --- load ----------------------------------------------------------------------------------
    broadcasts_enabled: bool = _field(
        True, source="user", help="False: no broadcasts at all (an idle run; zero message rate)."
    )
    broadcast_rate_per_s: float = _field(
        10.0,
        unit="broadcasts/s",
        low=0.0,
        low_open=True,
        high=1e7,
        source="user",
        help="Broadcasts per second, all clients together (Poisson).",
    )
    broadcast_offsets_s: tuple[float, ...] = _field(
        (),
        unit="s",
        source="user (e.g. a load test's schedule)",
        help="Explicit send times of the broadcasts (a trace to replay); empty: Poisson at broadcast_rate_per_s.",
    )
    message_bytes: int = _field(
        100, unit="B", low=1, high=1_048_576, source="user", help="Payload size of a broadcast."
    )
    invocation_rate_per_client_per_s: float = _field(
        0.0,
        unit="calls/s/client",
        low=0.0,
        high=1e4,
        source="user",
        help="Other hub-method calls per client per second (Poisson), one at a time per connection.",
    )
    method_kind: MethodKind = _field(
        "async",
        source="REFERENCE Part 2 §A1",
        help="How those methods wait: async (releases the thread), blocking "
        "(holds a thread, no CPU), sync-over-async (blocking; faster injection).",
    )
    method_wait_s: float = _field(
        0.05,
        unit="s",
        low=0.0,
        high=3_600.0,
        source="assumed",
        help="Time a hub method waits on I/O (a database call, say).",
    )
    method_cpu_s: float = _field(
        20e-6, unit="s", low=0.0, high=10.0, source="assumed", help="CPU a hub method uses besides the wait."
    )

    # --- clients and the load balancer ---------------------------------------------------------
    load_balancer: LoadBalancerPolicy = _field(
        "round-robin", source="REFERENCE Part 1 §4", help="round-robin, least-connections or sticky-ip (ip_hash)."
    )
    client_addresses: int = _field(
        0,
        unit="addresses",
        low=0,
        high=10_000_000,
        source="user",
        help="0: every client has its own IP; N: clients share N source addresses "
        "(NAT or proxy), assigned round-robin.",
    )
    connect_ramp_s: float = _field(
        0.0,
        unit="s",
        low=0.0,
        high=86_400.0,
        source="user",
        help="0: clients start connected; >0: first connections spread over this time.",
    )
    connection_lifetime_s: float = _field(
        0.0,
        unit="s",
        low=0.0,
        high=1e7,
        source="user",
        help="0: clients stay connected; >0: mean (exponential) time before a "
        "client closes and reconnects (churn that fills TIME_WAIT).",
    )
    reconnect: bool = _field(
        True, source="REFERENCE Part 1 §1.6", help="Automatic reconnect (withAutomaticReconnect())."
    )
    reconnect_delays_s: tuple[float, ...] = _field(
        (0.0, 2.0, 10.0, 30.0),
        unit="s",
        source="REFERENCE Part 2 §A6 (DefaultReconnectPolicy)",
        help="Delays before reconnect attempts 1..n; after the last, the client gives up.",
    )
    reconnect_jitter: float = _field(
        0.0,
        unit="fraction",
        low=0.0,
        high=1.0,
        source="REFERENCE Part 2 §A6",
        help="0: no jitter (the default policy); f: each delay × U(1-f, 1+f).",
    )
    silent_clients_fraction: float = _field(
        0.0,
        unit="fraction",
        low=0.0,
        high=1.0,
        source="user",
        help="Share of connected clients that go silent at silent_at_s without closing (a laptop lid shut, "
        "a dead network path): the server holds them until client_timeout_s.",
    )
    silent_at_s: float = _field(
        10.0, unit="s", low=0.0, high=86_400.0, source="user", help="When those clients go silent."
    )
    client_timeout_s: float = _field(
        30.0, unit="s", low=0.0, low_open=True, high=3_600.0,
        source="REFERENCE Part 1 §1.6 (ClientTimeoutInterval)",
        help="The server drops a client it has heard nothing from for this long.",
    )  # fmt: skip
    server_timeout_s: float = _field(
        30.0,
        unit="s",
        low=0.0,
        low_open=True,
        high=3_600.0,
        source="REFERENCE Part 1 §1.6 (serverTimeoutInMilliseconds)",
        help="A client drops a connection after hearing nothing for this long.",
    )
    client_keepalive_interval_s: float = _field(
        15.0,
        unit="s",
        low=0.0,
        low_open=True,
        high=3_600.0,
        source="REFERENCE Part 1 §1.6",
        help="Client ping interval when it sends nothing else.",
    )

    # --- servers -------------------------------------------------------------------------------
    server_profile: ServerProfile = _field(
        "aspnetcore", source="issue #2", help="aspnetcore (thread pool + cores) or asyncio-hub (one event loop)."
    )
    cores_per_server: int = _field(
        2,
        unit="cores",
        low=1,
        high=1_024,
        source="user",
        help="Cores of each server's host (asyncio-hub uses at most one).",
    )
    shared_host_cores: int = _field(
        0,
        unit="cores",
        low=0,
        high=1_024,
        source="user",
        help="0: each server on its own host; N: all servers share one N-core host.",
    )
    cpu_time_slice_s: float = _field(
        0.0,
        unit="s",
        low=0.0,
        high=1.0,
        source="Linux EEVDF base slice: 0.75 ms x (1 + log2(min(cores, 8))) (kernel/sched/fair.c)",
        help="0: a work item holds its core until done; >0: cores are time-shared as the operating system "
        "does, so work that has run this long while others wait goes to the back of the queue (matters "
        "when a host's processes outnumber its cores, as in a loopback validation).",
    )
    min_threads: int = _field(
        0,
        unit="threads",
        low=0,
        high=32_767,
        source="REFERENCE Part 2 §A1 (ThreadPool.SetMinThreads)",
        help="Thread-pool minimum; 0 means the .NET default, one per core.",
    )
    max_threads: int = _field(
        32_767, unit="threads", low=1, high=32_767, source="REFERENCE Part 2 §A1", help="Thread-pool maximum."
    )
    thread_injection_interval_s: float = _field(
        0.5,
        unit="s",
        low=0.0,
        low_open=True,
        high=60.0,
        source="REFERENCE Part 2 §0 (GateActivitiesPeriodMs)",
        help="While starved, one thread is added per interval.",
    )
    invocation_cpu_s: float = _field(
        4.7e-6,
        unit="s",
        low=0.0,
        high=1.0,
        source="REFERENCE Part 2 §A3 (#1158)",
        help="CPU to read and dispatch one incoming hub message.",
    )
    serialize_cpu_s: float = _field(
        2.1e-6,
        unit="s",
        low=0.0,
        high=1.0,
        source="REFERENCE Part 2 §A3 (#1158)",
        help="CPU to serialise one outgoing message (once per protocol).",
    )
    send_cpu_per_recipient_s: float = _field(
        1.4e-6,
        unit="s",
        low=0.0,
        high=1.0,
        source="REFERENCE Part 2 §A3 (aspnet/SignalR#1683)",
        help="CPU to write one serialised message to one connection.",
    )
    send_cpu_per_recipient_busy_s: float = _field(
        0.0, unit="s", low=0.0, high=1.0, source="simscale calibrate (a busy load)",
        help="0: always send_cpu_per_recipient_s; >0: the per-recipient cost while more work waits behind the "
        "fan-out (an event loop then serves more messages per wake-up and system call).",
    )  # fmt: skip
    keepalive_cpu_s: float = _field(
        2.0e-6,
        unit="s",
        low=0.0,
        high=1.0,
        source="assumed (a small write)",
        help="CPU per keep-alive ping sent or received.",
    )
    handshake_cpu_s: float = _field(
        200e-6,
        unit="s",
        low=0.0,
        high=10.0,
        source="assumed (negotiate + upgrade + handshake)",
        help="CPU to accept one connection.",
    )
    memory_base_bytes: float = _field(
        50e6, unit="B", low=0.0, high=1e13, source="assumed", help="Memory of a server with no connections."
    )
    memory_per_connection_bytes: float = _field(
        15_000.0,
        unit="B",
        low=0.0,
        high=1e9,
        source="REFERENCE Part 2 §A3 (dotnet/aspnetcore#30863)",
        help="Memory each idle connection costs.",
    )
    max_connections_per_server: int = _field(
        1_048_576,
        unit="connections",
        low=1,
        high=100_000_000,
        source="REFERENCE Part 2 §A2 (fs.nr_open)",
        help="File-descriptor / connection limit; beyond it, refused.",
    )
    keepalive_interval_s: float = _field(
        15.0,
        unit="s",
        low=0.0,
        low_open=True,
        high=3_600.0,
        source="REFERENCE Part 1 §1.6 (KeepAliveInterval)",
        help="Server sends a ping when it has sent nothing for this long.",
    )
    handshake_timeout_s: float = _field(
        15.0,
        unit="s",
        low=0.0,
        low_open=True,
        high=3_600.0,
        source="REFERENCE Part 1 §1.6 (HandshakeTimeout)",
        help="A connection not accepted within this is abandoned.",
    )
    calibration_file: str = _field(
        "", source="simscale calibrate", help="asyncio-hub only: a calibration JSON whose costs replace the defaults."
    )

    # --- TCP ports -----------------------------------------------------------------------------
    ephemeral_ports: int = _field(
        28_232,
        unit="ports",
        low=1,
        high=65_535,
        source="REFERENCE Part 2 §A2 (ip_local_port_range 32768-60999)",
        help="Ephemeral ports per (source address, destination).",
    )
    time_wait_s: float = _field(
        60.0,
        unit="s",
        low=0.0,
        high=3_600.0,
        source="REFERENCE Part 2 §A2 (TCP_TIMEWAIT_LEN)",
        help="How long a closed connection holds its port.",
    )
    proxy_hop: bool = _field(
        True,
        source="REFERENCE Part 2 §A2",
        help="The load balancer is a proxy holding a second connection per client to the backend.",
    )
    proxy_addresses: int = _field(
        1, unit="addresses", low=1, high=1_000, source="user", help="Source addresses of the proxy toward each backend."
    )

    # --- network -------------------------------------------------------------------------------
    network_latency_s: float = _field(
        0.0005,
        unit="s",
        low=0.0,
        high=10.0,
        source="assumed (same data centre)",
        help="Fixed one-way client-server latency.",
    )
    network_jitter_s: float = _field(
        0.0005, unit="s", low=0.0, high=10.0, source="assumed", help="Mean of the exponential extra one-way latency."
    )

    # --- backplane -----------------------------------------------------------------------------
    backplane: BackplaneKind = _field("none", source="issue #2", help="none or redis (pub/sub).")
    backplane_routing: RoutingModeName = _field(
        "direct-local",
        source="simscale.backplane.routing",
        help="direct-local (our hub: deliver locally, publish for the others) or via-backplane (ASP.NET Core).",
    )
    backplane_publish_base_s: float = _field(
        15e-6,
        unit="s",
        low=0.0,
        high=1.0,
        source="REFERENCE Part 2 §A5 [meas] (a in a + b·K)",
        help="Redis service time per PUBLISH.",
    )
    backplane_publish_per_subscriber_s: float = _field(
        0.5e-6,
        unit="s",
        low=0.0,
        high=1.0,
        source="REFERENCE Part 2 §A5 [meas] (b in a + b·K)",
        help="Redis service time per subscriber of the channel.",
    )
    backplane_latency_s: float = _field(
        0.0002, unit="s", low=0.0, high=10.0, source="assumed (same data centre)", help="One-way server-Redis latency."
    )
    backplane_output_buffer_limit_bytes: float = _field(
        32 * 1024 * 1024,
        unit="B",
        low=1.0,
        high=1e12,
        source="REFERENCE Part 2 §A5 (client-output-buffer-limit pubsub 32mb)",
        help="A subscriber further behind than this is disconnected.",
    )
    backplane_resubscribe_s: float = _field(
        1.0,
        unit="s",
        low=0.0,
        high=3_600.0,
        source="assumed",
        help="Time a disconnected subscriber takes to resubscribe.",
    )

    backplane_outage_at_s: float = _field(
        20.0,
        unit="s",
        low=0.0,
        high=86_400.0,
        source="user",
        help="When the backplane goes down (see backplane_outage_s).",
    )
    backplane_outage_s: float = _field(
        0.0, unit="s", low=0.0, high=86_400.0, source="REFERENCE Part 1 §3.4 (no buffering: messages lost)",
        help="0: no outage; >0: the backplane is down this long; publishes meanwhile are lost, not buffered.",
    )  # fmt: skip

    # --- the clients' own machine (for predicting a loopback load test) -------------------------
    client_host: ClientHostKind = _field(
        "free",
        source="simscale (validate and calibrate choose one-loop)",
        help="free: clients cost nothing, sends go out on time and clients read on arrival. one-loop: all "
        "clients live in one load-generator process with one event loop (simscale loadgen), whose costs are "
        "the loadgen_* fields; its loop sends late and reads in passes when busy.",
    )
    loadgen_cpu_per_delivery_s: float = _field(
        0.0,
        unit="s",
        low=0.0,
        high=1.0,
        source="simscale calibrate",
        help="With client_host one-loop: the load-generator process's CPU per message received (decode, "
        "tally), on the shared host when shared_host_cores > 0; each socket read costs "
        "loadgen_cpu_per_read_s on top.",
    )
    loadgen_cpu_per_read_s: float = _field(
        0.0,
        unit="s",
        low=0.0,
        high=1.0,
        source="simscale calibrate",
        help="CPU the load generator spends per socket read (system call, callback, frame header), shared by "
        "every message the read carries: a loop that falls behind finds several messages waiting per socket, "
        "so its cost per message falls toward loadgen_cpu_per_delivery_s as load grows.",
    )
    loadgen_cpu_per_wakeup_s: float = _field(
        0.0, unit="s", low=0.0, high=1.0, source="simscale calibrate",
        help="CPU per pass of the load generator's event loop that reads something (select, the loop's own "
        "work): a loop that keeps up makes many small passes per fan-out, one that falls behind a few big ones.",
    )  # fmt: skip
    loadgen_stall_mean_s: float = _field(
        0.0, unit="s", low=0.0, high=1.0, source="simscale calibrate",
        help="0: the load generator's loop runs as soon as it is woken. >0: a loop woken from sleep by a server's "
        "writes lands on that server's core and waits there until the fan-out is written or it is moved to a "
        "free core, after an exponential delay of this mean (at an idle loop; see loadgen_stall_busy_scale).",
    )  # fmt: skip
    loadgen_stall_busy_scale: float = _field(
        1.0, unit="fraction", low=0.0, high=100.0, low_open=True, source="simscale calibrate",
        help="The stall's mean shrinks as exp(-busy / this) with the loop's recent busy fraction: a loop that "
        "is rarely asleep is moved to a free core sooner.",
    )  # fmt: skip
    loadgen_cpu_per_send_s: float = _field(
        0.0, unit="s", low=0.0, high=1.0, source="simscale calibrate",
        help="CPU the load-generator process spends to send one broadcast. Its loop sends when it gets to it: "
        "a broadcast due while a pass is reading goes out after the next pass, stamped then.",
    )  # fmt: skip

    # --- measurement ---------------------------------------------------------------------------
    latency_samples_per_fanout: int = _field(
        256,
        unit="recipients",
        low=1,
        high=10_000_000,
        source="simscale",
        help="Per-recipient latencies computed per fan-out; larger fan-outs are sampled (delivery counts stay exact).",
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            _validate(spec, getattr(self, spec.name))
        if self.warmup_s >= self.duration_s:
            raise ValueError(f"warmup_s must be < duration_s ({self.duration_s}), got {self.warmup_s}")
        if self.min_threads > self.max_threads:
            raise ValueError(f"min_threads must be <= max_threads ({self.max_threads}), got {self.min_threads}")
        if list(self.broadcast_offsets_s) != sorted(self.broadcast_offsets_s):
            raise ValueError("broadcast_offsets_s must be in increasing order")
        if not self.reconnect_delays_s:
            raise ValueError("reconnect_delays_s must hold at least one delay")
        if self.calibration_file and self.server_profile != "asyncio-hub":
            raise ValueError("calibration_file applies only to server_profile 'asyncio-hub'")

    # --- derived ---------------------------------------------------------------------------------
    @property
    def threads_min(self) -> int:
        """The effective thread-pool minimum (the .NET default is one per core)."""
        return self.min_threads or self.cores_per_server

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (validated like any construction)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (tuples become lists, so the result is JSON-ready)."""
        return {
            spec.name: list(value) if isinstance(value := getattr(self, spec.name), tuple) else value
            for spec in dataclasses.fields(self)
        }


_HINTS: dict[str, Any] = {}


def _hint(name: str) -> Any:
    if not _HINTS:
        _HINTS.update(typing.get_type_hints(Scenario))
    return _HINTS[name]


def _allowed(spec: dataclasses.Field[Any]) -> str:
    hint = _hint(spec.name)
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(hint))
    low, high = spec.metadata.get("low"), spec.metadata.get("high")
    if low is None and high is None:
        return _type_name(hint)
    opener = ">" if spec.metadata.get("low_open") else ">="
    return f"{_type_name(hint)} {opener} {low:g} and <= {high:g}"


def _type_name(hint: Any) -> str:
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "text"
    if typing.get_origin(hint) is tuple:
        return "a list of numbers"
    return str(hint)


def _validate(spec: dataclasses.Field[Any], value: Any) -> None:
    hint = _hint(spec.name)
    name = spec.name
    if typing.get_origin(hint) is Literal:
        if value not in typing.get_args(hint):
            raise ValueError(f"{name} must be {_allowed(spec)}, got {value!r}")
        return
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text, got {value!r}")
        return
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, tuple) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in value
        ):
            raise ValueError(f"{name} must be a list of non-negative numbers, got {value!r}")
        return
    if hint is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"{name} must be {_allowed(spec)}, got {value!r}")
    if hint is float and (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)):
        raise ValueError(f"{name} must be {_allowed(spec)}, got {value!r}")
    low, high = spec.metadata.get("low"), spec.metadata.get("high")
    too_low = low is not None and (value <= low if spec.metadata.get("low_open") else value < low)
    if too_low or (high is not None and value > high):
        raise ValueError(f"{name} must be {_allowed(spec)}, got {value!r}")


def describe_fields(scenario: Scenario) -> list[dict[str, Any]]:
    """One row per field: name, value, unit, default, allowed range, source and meaning."""
    defaults = Scenario()
    rows = []
    for spec in dataclasses.fields(Scenario):
        value = getattr(scenario, spec.name)
        rows.append(
            {
                "field": spec.name,
                "value": list(value) if isinstance(value, tuple) else value,
                "unit": spec.metadata.get("unit", ""),
                "default": list(d) if isinstance(d := getattr(defaults, spec.name), tuple) else d,
                "allowed": _allowed(spec),
                "source": spec.metadata.get("source", ""),
                "help": spec.metadata.get("help", ""),
            }
        )
    return rows


def parse_field_value(field_name: str, text: str) -> Any:
    """Turn ``--set FIELD=VALUE`` text into the field's type; ValueError names the field."""
    specs = {spec.name: spec for spec in dataclasses.fields(Scenario)}
    if field_name not in specs:
        raise ValueError(f"unknown field {field_name!r}; `simscale simulate PRESET --describe` lists them")
    hint = _hint(field_name)
    spec = specs[field_name]
    try:
        if hint is bool:
            lowered = text.strip().lower()
            if lowered in {"true", "1", "yes", "on"}:
                return True
            if lowered in {"false", "0", "no", "off"}:
                return False
            raise ValueError
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if typing.get_origin(hint) is tuple:
            return tuple(float(part) for part in text.split(",") if part.strip())
        return text
    except ValueError:
        raise ValueError(f"{field_name} must be {_allowed(spec)}, got {text!r}") from None
