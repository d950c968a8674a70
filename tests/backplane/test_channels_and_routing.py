"""Channel names and the routing rule shared by the hub and the model; and the package's surface."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import simscale.backplane
from simscale.backplane import (
    DEFAULT_ROUTING_MODE,
    ChannelAddress,
    ChannelKind,
    ChannelNames,
    RoutingMode,
    accepts_from_backplane,
    delivers_locally_on_send,
)

PURE_MODULES = ("channels", "envelope", "routing")
PACKAGE_DIR = Path(simscale.backplane.__file__).parent


def test_channel_names_match_aspnet_core() -> None:
    names = ChannelNames("MyApp.Hubs.ChatHub")
    assert names.all == "MyApp.Hubs.ChatHub:all"
    assert names.group("room") == "MyApp.Hubs.ChatHub:group:room"
    assert names.connection("abc") == "MyApp.Hubs.ChatHub:connection:abc"
    assert names.user("ann") == "MyApp.Hubs.ChatHub:user:ann"
    assert names.internal_groups == "MyApp.Hubs.ChatHub:internal:groups"
    assert names.internal_ack("srv_1") == "MyApp.Hubs.ChatHub:internal:ack:srv_1"
    assert ChannelNames().all == "SimScale.ChatHub:all"


@pytest.mark.parametrize(
    ("channel", "address"),
    [
        ("Hub:all", ChannelAddress(ChannelKind.ALL)),
        ("Hub:group:room", ChannelAddress(ChannelKind.GROUP, "room")),
        ("Hub:group:a:b", ChannelAddress(ChannelKind.GROUP, "a:b")),
        ("Hub:group:", ChannelAddress(ChannelKind.GROUP, "")),
        ("Hub:connection:c1", ChannelAddress(ChannelKind.CONNECTION, "c1")),
        ("Hub:user:ann", ChannelAddress(ChannelKind.USER, "ann")),
        ("Hub:internal:groups", None),
        ("Hub:internal:ack:srv", None),
        ("Hub:all:extra", None),
        ("Hub:unknown:x", None),
        ("Other:all", None),
        ("Hub", None),
        ("Hubby:all", None),
    ],
)
def test_parse(channel: str, address: ChannelAddress | None) -> None:
    names = ChannelNames("Hub")
    assert names.parse(channel) == address
    if address is not None:
        assert names.for_address(address) == channel


def test_prefix_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="prefix"):
        ChannelNames("")


@pytest.mark.parametrize(
    ("mode", "origin", "this", "accepted"),
    [
        (RoutingMode.DIRECT_LOCAL, "s1", "s1", False),  # our own echo: already delivered locally
        (RoutingMode.DIRECT_LOCAL, "s2", "s1", True),
        (RoutingMode.DIRECT_LOCAL, "", "s1", True),  # unknown origin (ASP.NET Core publisher)
        (RoutingMode.VIA_BACKPLANE, "s1", "s1", True),  # local clients are served by the echo
        (RoutingMode.VIA_BACKPLANE, "s2", "s1", True),
        (RoutingMode.VIA_BACKPLANE, "", "s1", True),
    ],
)
def test_accepts_from_backplane(mode: RoutingMode, origin: str, this: str, accepted: bool) -> None:
    assert accepts_from_backplane(mode, origin, this) is accepted


def test_delivers_locally_on_send() -> None:
    assert delivers_locally_on_send(RoutingMode.DIRECT_LOCAL) is True
    assert delivers_locally_on_send(RoutingMode.VIA_BACKPLANE) is False
    assert DEFAULT_ROUTING_MODE is RoutingMode.DIRECT_LOCAL


def test_every_recipient_gets_a_message_exactly_once_in_both_modes() -> None:
    # The two rules together: local clients of the origin are served once, either directly or by the
    # echo, and every other server serves its clients once.
    servers = ["s1", "s2", "s3"]
    for mode in RoutingMode:
        deliveries = {server: 0 for server in servers}
        origin = "s1"
        if delivers_locally_on_send(mode):
            deliveries[origin] += 1
        for server in servers:  # the publish reaches every subscribed server, the origin included
            if accepts_from_backplane(mode, origin, server):
                deliveries[server] += 1
        assert deliveries == {server: 1 for server in servers}, mode


def test_routing_mode_values_are_the_cli_words() -> None:
    assert RoutingMode("direct-local") is RoutingMode.DIRECT_LOCAL
    assert RoutingMode("via-backplane") is RoutingMode.VIA_BACKPLANE
    with pytest.raises(ValueError):
        RoutingMode("broadcast")


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_only_stdlib_msgpack_and_each_other(module: str) -> None:
    tree = ast.parse((PACKAGE_DIR / f"{module}.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    allowed_ours = {f"simscale.backplane.{m}" for m in PURE_MODULES}
    for name in imported:
        root = name.split(".")[0]
        assert root not in {"asyncio", "redis", "simpy", "aiohttp"}, name
        if root == "simscale":
            assert name in allowed_ours, name
        else:
            assert root in sys.stdlib_module_names or root == "msgpack", name


def test_importing_the_pure_rules_pulls_in_neither_asyncio_nor_redis() -> None:
    code = (
        "import sys\n"
        "import simscale.backplane\n"
        "from simscale.backplane import routing, envelope, channels\n"
        "print(sorted(m for m in ('asyncio', 'redis') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_public_api_is_pinned() -> None:
    assert sorted(simscale.backplane.__all__) == [
        "Backplane",
        "BackplaneState",
        "BackplaneUnavailable",
        "ChannelAddress",
        "ChannelKind",
        "ChannelNames",
        "DEFAULT_PREFIX",
        "DEFAULT_ROUTING_MODE",
        "Envelope",
        "EnvelopeError",
        "GroupAck",
        "GroupAction",
        "GroupCommand",
        "MemoryBackplane",
        "MemoryBus",
        "MessageHandler",
        "PROTOCOL_JSON",
        "PROTOCOL_MESSAGEPACK",
        "RedisBackplane",
        "RedisServer",
        "RedisServerError",
        "RedisTls",
        "RoutingMode",
        "accepts_from_backplane",
        "create_backplane",
        "delivers_locally_on_send",
        "find_redis_server",
    ]
    for name in simscale.backplane.__all__:
        assert getattr(simscale.backplane, name) is not None


def test_missing_redis_py_gives_an_actionable_message() -> None:
    code = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "import simscale.backplane as b\n"
        "assert b.create_backplane('memory') is not None\n"
        "try:\n"
        "    b.RedisBackplane\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'redis>=5'" in result.stdout
    assert "memory" in result.stdout
