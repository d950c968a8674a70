"""The official @microsoft/signalr client (Node) against the hub: JSON and MessagePack, with and
without negotiation, errors, streams, groups, keep-alive and automatic reconnect."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from interop_testing import JsClient

from simscale.hub import HubServer, HubSettings

pytestmark = pytest.mark.node


@pytest.fixture
async def server() -> AsyncIterator[HubServer]:
    hub_server = HubServer()
    await hub_server.listen("127.0.0.1", 0)
    yield hub_server
    await hub_server.close()


@pytest.mark.parametrize("mode", ["negotiate", "skip"])
@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_official_client_full_tour(server: HubServer, protocol: str, mode: str) -> None:
    js = await JsClient.start("basic", f"{server.url}/chatHub", protocol, mode)
    try:
        events = {e["event"]: e for e in await js.finish()}
    finally:
        await js.stop()
    if mode == "skip":
        assert events["started"]["connectionId"] is None
    else:
        assert isinstance(events["started"]["connectionId"], str)
    assert events["echo"]["value"] == {"a": [1, 2.5, "x"], "b": None}
    assert events["received"]["args"] == ["alice", "hello"]
    assert events["group"]["args"] == ["bob", "to-room"]
    assert events["stream"]["items"] == [0, 1, 2, 3, 4]
    assert "Method does not exist." in events["error"]["message"]
    assert "target expects 1" in events["argerror"]["message"]
    assert events["cancelled"]["items"] == [0, 1]
    assert events["echo2"]["value"] == "still alive"
    assert "stopped" in events


async def test_a_client_asking_for_stateful_reconnect_works_without_it(server: HubServer) -> None:
    js = await JsClient.start("basic", f"{server.url}/chatHub", "json", env={"STATEFUL": "1"})
    try:
        events = {e["event"]: e for e in await js.finish()}
    finally:
        await js.stop()
    assert events["echo2"]["value"] == "still alive"


async def test_json_and_messagepack_clients_hear_each_other(server: HubServer) -> None:
    listeners = [await JsClient.start("listen", f"{server.url}/chatHub", p) for p in ("json", "messagepack")]
    try:
        for listener in listeners:
            await listener.wait_for("ready")
        lifetime = server.lifetime("/chatHub")
        await lifetime.send("all", "", "ReceiveMessage", ("server", "to all"))
        await lifetime.send("group", "room", "ReceiveMessage", ("server", "to room"))
        for listener in listeners:
            first = await listener.wait_for("message")
            second = await listener.wait_for("message")
            assert [first["message"], second["message"]] == ["to all", "to room"]
            await listener.finish()
    finally:
        for listener in listeners:
            await listener.stop()


async def test_reconnects_after_a_server_restart() -> None:
    first = HubServer()
    url = await first.listen("127.0.0.1", 0)
    port = int(url.rsplit(":", 1)[1])
    js = await JsClient.start("reconnect", f"{url}/chatHub", "messagepack")
    second: HubServer | None = None
    try:
        ready = await js.wait_for("ready")
        await first.close()  # sends Close with allowReconnect to every client
        second = HubServer()
        await second.listen("127.0.0.1", port)
        await js.wait_for("reconnecting")
        back = await js.wait_for("reconnected")
        assert back["connectionId"] != ready["connectionId"]  # a new connection, as in ASP.NET Core
        assert (await js.wait_for("echo"))["value"] == "after"
        await js.finish()
    finally:
        await js.stop()
        if second is not None:
            await second.close()


async def test_close_with_allow_reconnect_makes_the_client_reconnect(server: HubServer) -> None:
    js = await JsClient.start("reconnect", f"{server.url}/chatHub", "json")
    try:
        await js.wait_for("ready")
        assert server.close_connections("maintenance", allow_reconnect=True) == 1
        reconnecting = await js.wait_for("reconnecting")
        assert "maintenance" in (reconnecting["error"] or "")
        await js.wait_for("reconnected")
        assert (await js.wait_for("echo"))["value"] == "after"
        await js.finish()
    finally:
        await js.stop()


@pytest.mark.parametrize(("keepalive_s", "expected"), [(0.3, "alive"), (15.0, "Server timeout elapsed")])
async def test_hub_pings_keep_the_official_client_alive(keepalive_s: float, expected: str) -> None:
    settings = HubSettings(keepalive_interval_s=keepalive_s, client_timeout_s=60, sweep_interval_s=0.1)
    server = HubServer(settings=settings)
    url = await server.listen("127.0.0.1", 0)
    js = await JsClient.start("closed", f"{url}/chatHub", "json", env={"SERVER_TIMEOUT_MS": "1200", "HOLD_MS": "2500"})
    try:
        await js.wait_for("ready")
        result = await js.wait_for("result")
        assert expected in result["value"]
        await js.finish()
    finally:
        await js.stop()
        await server.close()


async def test_access_token_reaches_the_authenticator() -> None:
    from simscale.hub import StaticTokenAuthenticator

    server = HubServer(authenticator=StaticTokenAuthenticator({"secret": "carol"}, allow_anonymous=False))
    url = await server.listen("127.0.0.1", 0)
    js = await JsClient.start("listen", f"{url}/chatHub", "json", token="secret")
    try:
        await js.wait_for("ready")
        await server.lifetime("/chatHub").send("user", "carol", "ReceiveMessage", ("srv", "hi carol"))
        assert (await js.wait_for("message"))["message"] == "hi carol"
        await js.finish()
        refused = await JsClient.start("listen", f"{url}/chatHub", "json")
        assert "401" in await refused.expect_failure()
    finally:
        await js.stop()
        await server.close()


async def test_official_clients_of_one_user_on_two_servers_all_receive_send_to_user() -> None:
    """accessTokenFactory's token names the user (TokenIsUserAuthenticator); SendToUser crosses the backplane."""
    from simscale.backplane.memory import MemoryBackplane, MemoryBus
    from simscale.client import HubClient
    from simscale.hub import TokenIsUserAuthenticator

    bus = MemoryBus()
    servers = [
        HubServer(backplane=MemoryBackplane(bus, server_name=name), authenticator=TokenIsUserAuthenticator())
        for name in ("left", "right")
    ]
    urls = [await server.listen("127.0.0.1", 0) for server in servers]
    tabs = [await JsClient.start("listen", f"{url}/chatHub", "json", token="dana") for url in urls]
    other = await JsClient.start("listen", f"{urls[0]}/chatHub", "messagepack", token="erin")
    sender = HubClient(f"{urls[1]}/chatHub", access_token="erin")
    try:
        for js in (*tabs, other):
            await js.wait_for("ready")
        await sender.start()
        await sender.invoke("SendToUser", "dana", "erin", "hi dana")
        for tab in tabs:
            assert await tab.wait_for("message") == {"event": "message", "user": "erin", "message": "hi dana"}
        await sender.invoke("SendToUser", "erin", "erin", "to myself")
        assert (await other.wait_for("message"))["message"] == "to myself"  # dana's message never came first
        for js in (*tabs, other):
            await js.finish()
    finally:
        await sender.stop()
        for js in (*tabs, other):
            await js.stop()
        for server in servers:
            await server.close()


async def test_official_client_over_tls(tmp_path: Path) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(ca_file)
    server = HubServer()
    url = await server.listen("127.0.0.1", 0, server_context)
    assert url.startswith("https://")
    js = await JsClient.start("basic", f"{url}/chatHub", "messagepack", env={"NODE_EXTRA_CA_CERTS": str(ca_file)})
    try:
        events = {e["event"]: e for e in await js.finish()}
        assert events["echo2"]["value"] == "still alive"
    finally:
        await js.stop()
        await server.close()
