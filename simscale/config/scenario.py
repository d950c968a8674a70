"""The scenario: one frozen, validated dataclass that says everything a run needs.

Every field carries its section, unit, allowed range and the source of its default in ``metadata``
(declared with :func:`simscale.config.fields.setting`), so ``simscale simulate PRESET --describe`` and
the notebooks can show where each number comes from, grouped as the fields are declared.
A bad value raises ``ValueError`` naming the field and what is allowed, at construction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from simscale.config.fields import describe, parse_text, setting, validate_fields
from simscale.config.hosting import HostingKind, ServiceTier, check_hosting

__all__ = [
    "SECTIONS",
    "BackplaneKind",
    "ClientHostKind",
    "FanOutMode",
    "LoadBalancerPolicy",
    "MethodKind",
    "Scenario",
    "SendTarget",
    "ServerFailureKind",
    "ServerProfile",
    "TransportName",
    "describe_fields",
    "parse_field_value",
]

ServerProfile = Literal["aspnetcore", "asyncio-hub"]
LoadBalancerPolicy = Literal["round-robin", "least-connections", "sticky-ip", "random", "sticky-cookie"]
BackplaneKind = Literal["none", "redis"]
MethodKind = Literal["async", "blocking", "sync-over-async"]
RoutingModeName = Literal["direct-local", "via-backplane"]
ClientHostKind = Literal["free", "one-loop"]
WebRequestKind = Literal["async", "blocking"]
SendTarget = Literal["all", "group", "user", "connection"]
TransportName = Literal["websockets", "server-sent-events", "long-polling"]
ServerFailureKind = Literal["none", "crash", "partition", "deploy"]
FanOutMode = Literal["vectorised", "per-server"]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole run: topology, load, server profile, ports, backplane and measurement settings.

    Frozen and validated on construction: a bad value raises ``ValueError`` naming the field and
    what it allows. :func:`~simscale.scenarios.preset` gives the named ones.

    Example:

        >>> from simscale import Scenario
        >>> scenario = Scenario(servers=2, clients=50, duration_s=10.0, seed=1)
        >>> scenario.replace(backplane="redis").backplane
        'redis'
        >>> Scenario(warmup_s=20.0, duration_s=10.0)
        Traceback (most recent call last):
        ...
        ValueError: warmup_s must be < duration_s (10.0), got 20.0
    """

    # --- run: how long, how measured, which seed
    name: str = setting("custom", section="run", source="user", help="Scenario name, carried into every record.")
    duration_s: float = setting(
        60.0,
        gt=0.0,
        le=86_400.0,
        section="run",
        source="user",
        help="Simulated time during which broadcasts are sent.",
    )
    warmup_s: float = setting(
        5.0,
        ge=0.0,
        le=86_400.0,
        section="run",
        source="user",
        help="Broadcasts sent before this are not counted (must be < duration_s).",
    )
    drain_s: float = setting(
        5.0,
        ge=0.0,
        le=3_600.0,
        section="run",
        source="user",
        help="Extra simulated time after duration_s for deliveries in flight.",
    )
    seed: int = setting(
        0, ge=0, le=2**63 - 1, section="run", source="user", help="Seed of the run's own random generator."
    )
    sample_interval_s: float = setting(
        1.0, gt=0.0, le=3_600.0, section="run", source="user", help="Interval between resource samples."
    )
    latency_samples_per_fanout: int = setting(
        256,
        unit="recipients",
        ge=1,
        le=10_000_000,
        section="run",
        source="simscale",
        help="Per-recipient latencies computed per fan-out; larger fan-outs are sampled (delivery counts stay exact).",
    )
    fan_out_mode: FanOutMode = setting(
        "vectorised",
        section="run",
        source="simscale",
        help="vectorised: one send's fan-outs on every server are booked together on the servers' cores "
        "(no event per server; same delivery counts, latencies statistically equivalent); per-server: one work "
        "item per server, the reference. vectorised falls back to per-server with time-shared cores "
        "(shared_host_cores > 0 or cpu_time_slice_s > 0), cores that slow each other (cpu_parallel_speed < 1), "
        "the one-loop client host, Azure SignalR Service hosting, send_cpu_per_recipient_busy_s > 0, and work "
        "that holds a thread without CPU (blocking or "
        "sync-over-async methods, blocking web requests on the SignalR servers, handshake_wait_s > 0) or fewer "
        "threads than cores.",
    )

    # --- workload: what the clients send
    broadcasts_enabled: bool = setting(
        True, section="workload", source="user", help="False: no broadcasts at all (an idle run; zero message rate)."
    )
    broadcast_rate_per_s: float = setting(
        10.0,
        unit="broadcasts/s",
        gt=0.0,
        le=1e7,
        section="workload",
        source="user",
        help="Broadcasts per second, all clients together (Poisson).",
    )
    broadcast_offsets_s: tuple[float, ...] = setting(
        (),
        ge=0.0,
        section="workload",
        source="user (e.g. a load test's schedule)",
        help="Explicit send times of the broadcasts (a trace to replay); empty: Poisson at broadcast_rate_per_s.",
    )
    message_bytes: int = setting(
        100, ge=1, le=1_048_576, section="workload", source="user", help="Payload size of a broadcast."
    )
    invocation_rate_per_client_per_s: float = setting(
        0.0,
        unit="calls/s/client",
        ge=0.0,
        le=1e4,
        section="workload",
        source="user",
        help="Other hub-method calls per client per second (Poisson), one at a time per connection.",
    )
    method_kind: MethodKind = setting(
        "async",
        section="workload",
        source="docs/SOURCES.md#thread-pool-injection",
        help="How those methods wait: async (releases the thread), blocking "
        "(holds a thread, no CPU), sync-over-async (blocking; faster injection).",
    )
    method_wait_s: float = setting(
        0.05,
        ge=0.0,
        le=3_600.0,
        section="workload",
        source="assumed",
        help="Time a hub method waits on I/O (a database call, say).",
    )
    method_cpu_s: float = setting(
        20e-6, ge=0.0, le=10.0, section="workload", source="assumed", help="CPU a hub method uses besides the wait."
    )

    # --- audience: who a send goes to (everyone, a group, a user's connections, one connection)
    send_target: SendTarget = setting(
        "all",
        section="audience",
        source="docs/SOURCES.md#redis-backplane-behaviour (Clients.All, Group, User, Client)",
        help="all: every client (a broadcast); group: a random group, sent by one of its members to every member, "
        "the sender included; user: every connection of a random user; connection: one random connection. "
        "broadcast_rate_per_s is the rate of sends whatever their target.",
    )
    groups: int = setting(
        1,
        unit="groups",
        ge=1,
        le=10_000_000,
        section="audience",
        source="user",
        help="With send_target group: how many groups there are.",
    )
    group_size: int = setting(
        10,
        unit="clients",
        ge=1,
        le=10_000_000,
        section="audience",
        source="user",
        help="With send_target group: the members of each group, exactly (at most clients); members are drawn "
        "at random from the seed and land wherever the load balancer puts them.",
    )
    groups_per_client: int = setting(
        1,
        unit="groups",
        ge=1,
        le=100_000,
        section="audience",
        source="user",
        help="With send_target group: the most groups one client is in; groups × group_size must not exceed "
        "clients × groups_per_client.",
    )
    connections_per_user: int = setting(
        1,
        unit="connections",
        ge=1,
        le=100_000,
        section="audience",
        source="user",
        help="Connections of one user (several tabs): clients c and c' belong to the same user when "
        "c // connections_per_user == c' // connections_per_user.",
    )

    # --- clients: how clients connect, stay, time out and come back
    clients: int = setting(
        1_000,
        unit="clients",
        ge=1,
        le=10_000_000,
        section="clients",
        source="user",
        help="Clients that try to hold a connection.",
    )
    client_addresses: int = setting(
        0,
        unit="addresses",
        ge=0,
        le=10_000_000,
        section="clients",
        source="user",
        help="0: every client has its own IP; N: clients share N source addresses "
        "(NAT or proxy), assigned round-robin.",
    )
    connect_ramp_s: float = setting(
        0.0,
        ge=0.0,
        le=86_400.0,
        section="clients",
        source="user",
        help="0: clients start connected; >0: first connections spread over this time.",
    )
    connection_lifetime_s: float = setting(
        0.0,
        ge=0.0,
        le=1e7,
        section="clients",
        source="user",
        help="0: clients stay connected; >0: mean (exponential) time before a "
        "client closes and reconnects (churn that fills TIME_WAIT).",
    )
    reconnect: bool = setting(
        True,
        section="clients",
        source="docs/SOURCES.md#client-reconnect-policy",
        help="Automatic reconnect (withAutomaticReconnect()).",
    )
    reconnect_delays_s: tuple[float, ...] = setting(
        (0.0, 2.0, 10.0, 30.0),
        ge=0.0,
        section="clients",
        source="docs/SOURCES.md#client-reconnect-policy (DefaultReconnectPolicy)",
        help="Delays before reconnect attempts 1..n; after the last, the client gives up.",
    )
    reconnect_jitter: float = setting(
        0.0,
        unit="fraction",
        ge=0.0,
        le=1.0,
        section="clients",
        source="docs/SOURCES.md#client-reconnect-policy",
        help="0: no jitter (the default policy); f: each delay × U(1-f, 1+f).",
    )
    silent_clients_fraction: float = setting(
        0.0,
        ge=0.0,
        le=1.0,
        section="clients",
        source="user",
        help="Share of connected clients that go silent at silent_at_s without closing (a laptop lid shut, "
        "a dead network path): the server holds them until client_timeout_s.",
    )
    silent_at_s: float = setting(
        10.0, ge=0.0, le=86_400.0, section="clients", source="user", help="When those clients go silent."
    )
    server_timeout_s: float = setting(
        30.0,
        gt=0.0,
        le=3_600.0,
        section="clients",
        source="docs/SOURCES.md#keep-alive-and-timeouts (serverTimeoutInMilliseconds)",
        help="A client drops a connection after hearing nothing for this long.",
    )
    client_keepalive_interval_s: float = setting(
        15.0,
        gt=0.0,
        le=3_600.0,
        section="clients",
        source="docs/SOURCES.md#keep-alive-and-timeouts (keepAliveIntervalInMilliseconds)",
        help="Client ping interval when it sends nothing else.",
    )

    # --- load balancer: who picks a server, and the proxy's own connections
    load_balancer: LoadBalancerPolicy = setting(
        "round-robin",
        section="load balancer",
        source="docs/SOURCES.md#load-balancers-and-sticky-sessions",
        help="round-robin, least-connections, sticky-ip (ip_hash), random or sticky-cookie (affinity cookie).",
    )
    proxy_hop: bool = setting(
        True,
        section="load balancer",
        source="docs/SOURCES.md#tcp-ports-and-time_wait",
        help="The load balancer is a proxy holding a second connection per client to the backend.",
    )
    proxy_addresses: int = setting(
        1,
        unit="addresses",
        ge=1,
        le=1_000,
        section="load balancer",
        source="user",
        help="Source addresses of the proxy toward each backend.",
    )

    # --- servers: the hubs: profile, cores, costs, memory, limits and timers
    servers: int = setting(1, unit="servers", ge=1, le=10_000, section="servers", source="user", help="Hub servers.")
    server_profile: ServerProfile = setting(
        "aspnetcore",
        section="servers",
        source="simscale (ASP.NET Core on the .NET thread pool, or simscale's own asyncio hub)",
        help="aspnetcore (thread pool + cores) or asyncio-hub (one event loop).",
    )
    cores_per_server: int = setting(
        2,
        unit="cores",
        ge=1,
        le=1_024,
        section="servers",
        source="user",
        help="Cores of each server's host (asyncio-hub uses at most one).",
    )
    shared_host_cores: int = setting(
        0,
        unit="cores",
        ge=0,
        le=1_024,
        section="servers",
        source="user",
        help="0: each server on its own host; N: all servers share one N-core host.",
    )
    cpu_time_slice_s: float = setting(
        0.0,
        ge=0.0,
        le=1.0,
        section="servers",
        source="Linux EEVDF base slice: 0.75 ms x (1 + log2(min(cores, 8))) (kernel/sched/fair.c)",
        help="0: a work item holds its core until done; >0: cores are time-shared as the operating system "
        "does, so work that has run this long while others wait goes to the back of the queue (matters "
        "when a host's processes outnumber its cores, as in a loopback validation).",
    )
    shared_host_neighbour_share: float = setting(
        0.0, unit="fraction", ge=0.0, le=0.95, section="servers",
        source="simscale validate (measured on the hub cores)",
        help="With shared_host_cores > 0 and cpu_time_slice_s > 0: the share of each shared core that work outside "
        "the model takes (a CPU quota, busy neighbour processes), modelled as one neighbour per core that takes "
        "it for a slice (more above a share of 0.5) every slice / share. 0: none.",
    )  # fmt: skip
    cpu_parallel_speed: float = setting(
        1.0, unit="fraction", gt=0.0, le=1.0, section="servers", source="simscale validate (measured on the host)",
        help="Work per second of all of a host's cores busy together over cores x that of one alone (1: independent "
        "cores). Below 1, a core runs at 1 - (1 - this) x (k - 1) / (cores - 1) of full speed while k of the host's "
        "cores are busy (a shared or throttled host, hyper-threads, noisy neighbours).",
    )  # fmt: skip
    invocation_cpu_s: float = setting(
        4.7e-6,
        ge=0.0,
        le=1.0,
        section="servers",
        source="docs/SOURCES.md#cpu-per-message (aspnet/SignalR#1158)",
        help="CPU to read and dispatch one incoming hub message.",
    )
    serialize_cpu_s: float = setting(
        2.1e-6,
        ge=0.0,
        le=1.0,
        section="servers",
        source="docs/SOURCES.md#cpu-per-message (aspnet/SignalR#1158)",
        help="CPU to serialise one outgoing message (once per protocol).",
    )
    send_cpu_per_recipient_s: float = setting(
        1.4e-6,
        ge=0.0,
        le=1.0,
        section="servers",
        source="docs/SOURCES.md#cpu-per-message (aspnet/SignalR#1683)",
        help="CPU to write one serialised message to one connection.",
    )
    send_cpu_per_recipient_busy_s: float = setting(
        0.0, ge=0.0, le=1.0, section="servers", source="simscale calibrate (a busy load)",
        help="0: always send_cpu_per_recipient_s; >0: the per-recipient cost while more work waits behind the "
        "fan-out (an event loop then serves more messages per wake-up and system call).",
    )  # fmt: skip
    keepalive_cpu_s: float = setting(
        2.0e-6,
        ge=0.0,
        le=1.0,
        section="servers",
        source="assumed (a small write)",
        help="CPU per keep-alive ping sent or received.",
    )
    handshake_cpu_s: float = setting(
        200e-6,
        ge=0.0,
        le=10.0,
        section="servers",
        source="assumed (negotiate + upgrade + handshake)",
        help="CPU to accept one connection.",
    )
    memory_base_bytes: float = setting(
        50e6, ge=0.0, le=1e13, section="servers", source="assumed", help="Memory of a server with no connections."
    )
    memory_per_connection_bytes: float = setting(
        15_000.0,
        ge=0.0,
        le=1e9,
        section="servers",
        source="docs/SOURCES.md#per-connection-memory (dotnet/aspnetcore#30863)",
        help="Memory each idle connection costs.",
    )
    max_connections_per_server: int = setting(
        1_048_576,
        unit="connections",
        ge=1,
        le=100_000_000,
        section="servers",
        source="docs/SOURCES.md#tcp-ports-and-time_wait (fs.nr_open)",
        help="File-descriptor / connection limit; beyond it, refused.",
    )
    keepalive_interval_s: float = setting(
        15.0,
        gt=0.0,
        le=3_600.0,
        section="servers",
        source="docs/SOURCES.md#keep-alive-and-timeouts (KeepAliveInterval)",
        help="Server sends a ping when it has sent nothing for this long.",
    )
    handshake_timeout_s: float = setting(
        15.0,
        gt=0.0,
        le=3_600.0,
        section="servers",
        source="docs/SOURCES.md#keep-alive-and-timeouts (HandshakeTimeout)",
        help="A connection not accepted within this is abandoned.",
    )
    client_timeout_s: float = setting(
        30.0, gt=0.0, le=3_600.0,
        section="servers",
        source="docs/SOURCES.md#keep-alive-and-timeouts (ClientTimeoutInterval)",
        help="The server drops a client it has heard nothing from for this long.",
    )  # fmt: skip
    calibration_file: str = setting(
        "",
        section="servers",
        source="simscale calibrate",
        help="asyncio-hub only: a calibration JSON whose costs replace the defaults.",
    )

    # --- thread pool: the .NET thread pool of the aspnetcore profile
    min_threads: int = setting(
        0,
        unit="threads",
        ge=0,
        le=32_767,
        section="thread pool",
        source="docs/SOURCES.md#thread-pool-injection (ThreadPool.SetMinThreads)",
        help="Thread-pool minimum; 0 means the .NET default, one per core.",
    )
    max_threads: int = setting(
        32_767,
        unit="threads",
        ge=1,
        le=32_767,
        section="thread pool",
        source="docs/SOURCES.md#thread-pool-injection",
        help="Thread-pool maximum.",
    )
    thread_injection_interval_s: float = setting(
        0.5,
        gt=0.0,
        le=60.0,
        section="thread pool",
        source="docs/SOURCES.md#thread-pool-injection (GateActivitiesPeriodMs)",
        help="While starved, one thread is added per interval.",
    )

    # --- ports: TCP ports of each (source address, destination) pair
    ephemeral_ports: int = setting(
        28_232,
        unit="ports",
        ge=1,
        le=65_535,
        section="ports",
        source="docs/SOURCES.md#tcp-ports-and-time_wait (ip_local_port_range 32768-60999)",
        help="Ephemeral ports per (source address, destination).",
    )
    time_wait_s: float = setting(
        60.0,
        ge=0.0,
        le=3_600.0,
        section="ports",
        source="docs/SOURCES.md#tcp-ports-and-time_wait (TCP_TIMEWAIT_LEN)",
        help="How long a closed connection holds its port.",
    )

    # --- network: client-server links
    network_latency_s: float = setting(
        0.0005,
        ge=0.0,
        le=10.0,
        section="network",
        source="assumed (same data centre)",
        help="Fixed one-way client-server latency.",
    )
    network_jitter_s: float = setting(
        0.0005,
        ge=0.0,
        le=10.0,
        section="network",
        source="assumed",
        help="Mean of the exponential extra one-way latency.",
    )

    # --- backplane: what joins the servers
    backplane: BackplaneKind = setting(
        "none", section="backplane", source="docs/SOURCES.md#redis-backplane-behaviour", help="none or redis (pub/sub)."
    )
    backplane_routing: RoutingModeName = setting(
        "direct-local",
        section="backplane",
        source="simscale.backplane.routing",
        help="direct-local (our hub: deliver locally, publish for the others) or via-backplane (ASP.NET Core).",
    )
    backplane_publish_base_s: float = setting(
        15e-6,
        ge=0.0,
        le=1.0,
        section="backplane",
        source="docs/SOURCES.md#redis-pubsub-cost (measured: a in a + b·K)",
        help="Redis service time per PUBLISH.",
    )
    backplane_publish_per_subscriber_s: float = setting(
        0.5e-6,
        ge=0.0,
        le=1.0,
        section="backplane",
        source="docs/SOURCES.md#redis-pubsub-cost (measured: b in a + b·K)",
        help="Redis service time per subscriber of the channel.",
    )
    backplane_latency_s: float = setting(
        0.0002,
        ge=0.0,
        le=10.0,
        section="backplane",
        source="assumed (same data centre)",
        help="One-way server-Redis latency.",
    )
    backplane_output_buffer_limit_bytes: float = setting(
        32 * 1024 * 1024,
        ge=1.0,
        le=1e12,
        section="backplane",
        source="docs/SOURCES.md#redis-pubsub-cost (client-output-buffer-limit pubsub 32mb)",
        help="A subscriber further behind than this is disconnected.",
    )
    backplane_resubscribe_s: float = setting(
        1.0,
        ge=0.0,
        le=3_600.0,
        section="backplane",
        source="assumed",
        help="Time a disconnected subscriber takes to resubscribe.",
    )
    backplane_outage_at_s: float = setting(
        20.0,
        ge=0.0,
        le=86_400.0,
        section="backplane",
        source="user",
        help="When the backplane goes down (see backplane_outage_s).",
    )
    backplane_outage_s: float = setting(
        0.0, ge=0.0, le=86_400.0, section="backplane",
        source="docs/SOURCES.md#redis-backplane-behaviour (no buffering: messages lost)",
        help="0: no outage; >0: the backplane is down this long; publishes meanwhile are lost, not buffered.",
    )  # fmt: skip

    # --- client host: the clients' own machine, for predicting a loopback load test
    client_host: ClientHostKind = setting(
        "free",
        section="client host",
        source="simscale (validate and calibrate choose one-loop)",
        help="free: clients cost nothing, sends go out on time and clients read on arrival. one-loop: all "
        "clients live in one load-generator process with one event loop (simscale loadgen), whose costs are "
        "the loadgen_* fields; its loop sends late and reads in passes when busy.",
    )
    loadgen_cpu_per_delivery_s: float = setting(
        0.0,
        ge=0.0,
        le=1.0,
        section="client host",
        source="simscale calibrate",
        help="With client_host one-loop: the load-generator process's CPU per message received (decode, "
        "tally), on the shared host when shared_host_cores > 0; each socket read costs "
        "loadgen_cpu_per_read_s on top.",
    )
    loadgen_cpu_per_read_s: float = setting(
        0.0,
        ge=0.0,
        le=1.0,
        section="client host",
        source="simscale calibrate",
        help="CPU the load generator spends per socket read (system call, callback, frame header), shared by "
        "every message the read carries: a loop that falls behind finds several messages waiting per socket, "
        "so its cost per message falls toward loadgen_cpu_per_delivery_s as load grows.",
    )
    loadgen_cpu_per_wakeup_s: float = setting(
        0.0, ge=0.0, le=1.0, section="client host", source="simscale calibrate",
        help="CPU per pass of the load generator's event loop that reads something (select, the loop's own "
        "work): a loop that keeps up makes many small passes per fan-out, one that falls behind a few big ones.",
    )  # fmt: skip
    loadgen_own_cores: int = setting(
        0, unit="cores", ge=0, le=1_024, section="client host",
        source="simscale validate (pinned apart when the host has 2+ cores)",
        help="With client_host one-loop: 0: the load generator runs on the shared host's cores (shared_host_cores) "
        "or, without one, on a core of its own; N: it is pinned to N cores of its own beside the shared ones, so "
        "it takes no turns with the hubs and its loop never waits on a hub's core (no stall).",
    )  # fmt: skip
    loadgen_neighbour_share: float = setting(
        0.0, unit="fraction", ge=0.0, le=0.95, section="client host",
        source="simscale validate (measured on the load generator's core)",
        help="With loadgen_own_cores > 0 and cpu_time_slice_s > 0: the share of the load generator's own cores that "
        "work outside the model takes, modelled as shared_host_neighbour_share is. 0: none.",
    )  # fmt: skip
    loadgen_stall_mean_s: float = setting(
        0.0, ge=0.0, le=1.0, section="client host", source="simscale calibrate",
        help="0: the load generator's loop runs as soon as it is woken. >0: a loop woken from sleep by a server's "
        "writes lands on that server's core and waits there until the fan-out is written or it is moved to a "
        "free core, after an exponential delay of this mean (at an idle loop; see loadgen_stall_busy_scale).",
    )  # fmt: skip
    loadgen_stall_busy_scale: float = setting(
        1.0, unit="fraction", gt=0.0, le=100.0, section="client host", source="simscale calibrate",
        help="The stall's mean shrinks as exp(-busy / this) with the loop's recent busy fraction: a loop that "
        "is rarely asleep is moved to a free core sooner.",
    )  # fmt: skip
    loadgen_cpu_per_send_s: float = setting(
        0.0, ge=0.0, le=1.0, section="client host", source="simscale calibrate",
        help="CPU the load-generator process spends to send one broadcast. Its loop sends when it gets to it: "
        "a broadcast due while a pass is reading goes out after the next pass, stamped then.",
    )  # fmt: skip

    # --- hosting: self-hosted servers, or Azure SignalR Service in front of them
    hosting: HostingKind = setting(
        "self-hosted", section="hosting", source="user",
        help="'azure-signalr': clients connect to Azure SignalR Service, which fans out; each app server holds "
        "server_connections_per_hub connections to it (docs/SOURCES.md#azure-signalr-service).",
    )  # fmt: skip
    service_tier: ServiceTier = setting(
        "standard", section="hosting", source="docs/SOURCES.md#azure-signalr-service",
        help="The service's tier: it decides which unit counts are allowed.",
    )  # fmt: skip
    service_units: int = setting(
        0, unit="units", ge=0, le=1_000, section="hosting", source="docs/SOURCES.md#azure-signalr-service",
        help="0: the smallest allowed count that holds clients + server connections; else 1-10, 20, …, 100 "
        "(standard, premium_p1) or 100, 200, …, 1000 (premium_p2).",
    )  # fmt: skip
    server_connections_per_hub: int = setting(
        5, unit="connections", ge=1, le=1_000, section="hosting", source="docs/SOURCES.md#azure-signalr-service",
        help="Server connections each app server opens to the service for the hub (the SDK's default is 5).",
    )  # fmt: skip
    service_connections_per_unit: int = setting(
        1_000, unit="connections", ge=1, le=1_000_000, section="hosting",
        source="docs/SOURCES.md#azure-signalr-service",
        help="Concurrent connections one unit holds, client and server connections counted; beyond it the "
        "service refuses.",
    )  # fmt: skip
    service_messages_per_unit_per_s: float = setting(
        2_857.0, unit="messages/s", gt=0.0, le=1e9, section="hosting",
        source="docs/SOURCES.md#azure-signalr-service (2,000 msg/s per unit at <= 70 % load)",
        help="2 KB messages one unit passes per second (in or out) when fully busy; a message under 1 KB costs "
        "as much as a 1 KB one, a bigger one in proportion to its size.",
    )  # fmt: skip
    service_included_messages_per_unit_per_day: int = setting(
        1_000_000, unit="messages", ge=0, le=10**12, section="hosting",
        source="docs/SOURCES.md#azure-signalr-service",
        help="Billed messages included in each unit-day (Standard and Premium).",
    )  # fmt: skip
    service_unit_price_per_day_usd: float = setting(
        1.61, unit="USD", ge=0.0, le=1e6, section="hosting",
        source="docs/SOURCES.md#azure-signalr-service (Standard, price list as read 2026-12-03)",
        help="Price of one unit for one day.",
    )  # fmt: skip
    service_price_per_million_messages_usd: float = setting(
        1.0, unit="USD", ge=0.0, le=1e6, section="hosting",
        source="docs/SOURCES.md#azure-signalr-service (price list as read 2026-12-03)",
        help="Price of a million billed messages beyond the included ones.",
    )  # fmt: skip
    service_price_date: str = setting(
        "2026-12-03", section="hosting", source="docs/SOURCES.md#azure-signalr-service",
        help="When the two prices were read from the public price list (set it with your own prices).",
    )  # fmt: skip
    service_drop_server_connection_at_s: float = setting(
        0.0, ge=0.0, le=86_400.0, section="hosting", source="user",
        help="When server connection 0 of server 0 drops (0: never): the clients pinned to it are disconnected "
        "and reconnect with their policy; the SDK reopens the server connection.",
    )  # fmt: skip

    # --- web traffic: ordinary HTTP requests beside the hub
    web_request_rate_per_s: float = setting(
        0.0, unit="requests/s", ge=0.0, le=1e7, section="web traffic", source="user",
        help="Ordinary web requests per second (Poisson); 0: none.",
    )  # fmt: skip
    web_request_cpu_s: float = setting(
        0.002, ge=0.0, le=10.0, section="web traffic", source="user", help="CPU one web request costs."
    )  # fmt: skip
    web_request_wait_s: float = setting(
        0.0, ge=0.0, le=600.0, section="web traffic", source="user",
        help="Time a request waits on I/O (a database); a 'blocking' request holds its thread meanwhile.",
    )  # fmt: skip
    web_request_kind: WebRequestKind = setting(
        "async", section="web traffic", source="user", help="'blocking' holds a thread while it waits."
    )  # fmt: skip
    web_servers: int = setting(
        0, unit="servers", ge=0, le=10_000, section="web traffic", source="user",
        help="0: the web requests go to the SignalR servers and share their CPU and threads; N: a separate tier.",
    )  # fmt: skip
    web_request_timeout_s: float = setting(
        30.0, gt=0.0, le=3_600.0, section="web traffic", source="user",
        help="A request not answered by then counts as failed.",
    )  # fmt: skip

    # --- transport: negotiate, then the transport request, each through the balancer
    transport: TransportName = setting(
        "websockets",
        section="transport",
        source="docs/SOURCES.md#load-balancers-and-sticky-sessions",
        help="The clients' transport: websockets, server-sent-events or long-polling.",
    )
    skip_negotiation: bool = setting(
        True, section="transport", source="docs/SOURCES.md#load-balancers-and-sticky-sessions (skipNegotiation)",
        help="True: WebSockets straight away (one request). False: negotiate first; a transport request that a "
        "non-sticky balancer sends to another server fails with 404. Only WebSockets can skip it.",
    )  # fmt: skip

    # --- server failure: a server lost, or all of them redeployed, during the run
    server_failure_kind: ServerFailureKind = setting(
        "none", section="server failure", source="user",
        help="none; crash (its clients notice at once); partition (they notice after server_timeout_s); "
        "deploy (every server restarted in turn, deploy_interval_s apart, each draining its clients first).",
    )  # fmt: skip
    server_failure_at_s: float = setting(
        20.0, ge=0.0, le=86_400.0, section="server failure", source="user",
        help="When the server fails (the first restart of a deploy); must be < duration_s.",
    )  # fmt: skip
    server_failure_server: int = setting(
        0, unit="index", ge=0, le=10_000, section="server failure", source="user",
        help="Which server fails (a deploy starts with it); must be < servers.",
    )  # fmt: skip
    server_failure_duration_s: float = setting(
        20.0, gt=0.0, le=86_400.0, section="server failure", source="user",
        help="How long a failed server stays down (for a deploy: each server's restart).",
    )  # fmt: skip
    deploy_interval_s: float = setting(
        15.0, gt=0.0, le=86_400.0, section="server failure", source="user",
        help="Deploy: time between one server's restart and the next one's.",
    )  # fmt: skip
    handshake_wait_s: float = setting(
        0.0, ge=0.0, le=3_600.0, section="server failure", source="user",
        help="0: a batch of handshakes is one work item. >0: each handshake is its own work item that blocks "
        "its thread this long (OnConnectedAsync waiting on a database, say) and is done even for a client "
        "that gave up meanwhile.",
    )  # fmt: skip
    max_concurrent_handshakes: int = setting(
        0, unit="handshakes", ge=0, le=100_000_000, section="server failure", source="user",
        help="0: no limit. N: a server admits at most N handshakes at once and refuses the rest at once "
        "(an admission limit), so its queue never holds more than it can finish in time.",
    )  # fmt: skip

    def __post_init__(self) -> None:
        validate_fields(self)
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
        check_hosting(self)
        self._check_audience()
        self._check_misbehaviour()

    def _check_audience(self) -> None:
        if self.send_target == "group":
            if self.group_size > self.clients:
                raise ValueError(
                    f"group_size must be an integer >= 1 and <= clients ({self.clients}) with send_target "
                    f"'group', got {self.group_size}"
                )
            if self.groups * self.group_size > self.clients * self.groups_per_client:
                raise ValueError(
                    f"groups must be <= clients × groups_per_client / group_size "
                    f"({self.clients * self.groups_per_client // self.group_size}) with send_target 'group': "
                    f"groups × group_size ({self.groups * self.group_size}) must not exceed "
                    f"clients × groups_per_client ({self.clients * self.groups_per_client}), got groups={self.groups}"
                )
        if self.send_target == "user" and self.connections_per_user > self.clients:
            raise ValueError(
                f"connections_per_user must be an integer >= 1 and <= clients ({self.clients}) with send_target "
                f"'user', got {self.connections_per_user}"
            )

    def _check_misbehaviour(self) -> None:
        if self.skip_negotiation and self.transport != "websockets":
            raise ValueError(
                f"skip_negotiation applies only to transport 'websockets' (set it false), got {self.transport!r}"
            )
        if self.server_failure_server >= self.servers:
            raise ValueError(
                f"server_failure_server must be < servers ({self.servers}), got {self.server_failure_server}"
            )
        if self.server_failure_kind != "none" and self.server_failure_at_s >= self.duration_s:
            raise ValueError(
                f"server_failure_at_s must be < duration_s ({self.duration_s}), got {self.server_failure_at_s}"
            )

    # --- derived ---------------------------------------------------------------------------------
    @property
    def threads_min(self) -> int:
        """The effective thread-pool minimum (the .NET default is one per core)."""
        return self.min_threads or self.cores_per_server

    @property
    def fan_out_per_server_reasons(self) -> tuple[str, ...]:
        """Why ``fan_out_mode="vectorised"`` falls back to per-server fan-outs here (empty: it applies).

        Vectorised fan-outs book CPU on each server's cores as FIFO, non-preemptive queues with the work's
        CPU known on arrival and without holding a thread; whatever breaks that needs per-server work items.

        Example:

            >>> Scenario().fan_out_per_server_reasons
            ()
            >>> Scenario(shared_host_cores=2, cpu_time_slice_s=1.5e-3).fan_out_per_server_reasons
            ('shared_host_cores > 0', 'cpu_time_slice_s > 0')
        """
        checks = {
            "fan_out_mode is per-server": self.fan_out_mode == "per-server",
            "shared_host_cores > 0": self.shared_host_cores > 0,
            "cpu_time_slice_s > 0": self.cpu_time_slice_s > 0,
            "cpu_parallel_speed < 1": self.cpu_parallel_speed < 1.0,
            "client_host is one-loop": self.client_host == "one-loop",
            "hosting is azure-signalr": self.hosting == "azure-signalr",
            "send_cpu_per_recipient_busy_s > 0": self.send_cpu_per_recipient_busy_s > 0,
            "blocking hub methods": self.invocation_rate_per_client_per_s > 0
            and self.method_kind != "async"
            and self.method_wait_s > 0,
            "blocking web requests on the SignalR servers": self.web_request_rate_per_s > 0
            and self.web_servers == 0
            and self.web_request_kind == "blocking",
            "handshake_wait_s > 0": self.handshake_wait_s > 0,
            "min_threads < cores_per_server": self.server_profile == "aspnetcore"
            and self.threads_min < self.cores_per_server,
        }
        return tuple(reason for reason, applies in checks.items() if applies)

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (validated like any construction)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (tuples become lists, so the result is JSON-ready)."""
        return {
            spec.name: list(value) if isinstance(value := getattr(self, spec.name), tuple) else value
            for spec in dataclasses.fields(self)
        }


SECTIONS: tuple[str, ...] = (
    "run",
    "workload",
    "audience",
    "clients",
    "load balancer",
    "servers",
    "thread pool",
    "ports",
    "network",
    "backplane",
    "client host",
    "hosting",
    "web traffic",
    "transport",
    "server failure",
)
"""The Scenario's sections, in the order its fields are declared and listed."""


def describe_fields(scenario: Scenario) -> list[dict[str, Any]]:
    """One row per field: name, section, value, unit, default, allowed range, source and meaning.

    Example:

        >>> from simscale.scenarios import describe_fields, preset
        >>> rows = {row["field"]: row for row in describe_fields(preset("single-server"))}
        >>> rows["duration_s"]["value"], rows["duration_s"]["unit"], rows["duration_s"]["allowed"]
        (60.0, 's', 'a number > 0 and <= 86400')
    """
    return describe(scenario)


def parse_field_value(field_name: str, text: str) -> Any:
    """Turn ``--set FIELD=VALUE`` text into the field's type; ValueError names the field.

    Example:

        >>> from simscale.scenarios import parse_field_value
        >>> parse_field_value("servers", "3"), parse_field_value("reconnect_delays_s", "0,2")
        (3, (0.0, 2.0))
        >>> parse_field_value("server", "3")
        Traceback (most recent call last):
        ...
        ValueError: unknown field 'server'; `simscale simulate PRESET --describe` lists them
    """
    if field_name not in {spec.name for spec in dataclasses.fields(Scenario)}:
        raise ValueError(f"unknown field {field_name!r}; `simscale simulate PRESET --describe` lists them")
    return parse_text(Scenario, field_name, text)
