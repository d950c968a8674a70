"""The official @microsoft/signalr client forced onto Server-Sent Events and long polling.

Each test runs the same tour as the WebSocket one (handshake, invocations, a broadcast, a group,
streams and their cancellation, errors) over the HTTP transports, so every request pattern of
docs/SOURCES.md#hub-transports is exercised by the real client: negotiate, the event stream or
the polls, a POST per batch of records and, for long polling, the DELETE of ``stop()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from interop_testing import JsClient

from simscale.hub import HubServer
from simscale.hub.transports import TransportSettings, TransportType

pytestmark = pytest.mark.node

_TRANSPORT_CLASS = {"sse": "ServerSentEventsTransport", "longpolling": "LongPollingTransport"}


@pytest.fixture
async def server() -> AsyncIterator[HubServer]:
    hub_server = HubServer()
    await hub_server.listen("127.0.0.1", 0)
    yield hub_server
    await hub_server.close()


@pytest.mark.parametrize(
    ("mode", "protocol"), [("sse", "json"), ("longpolling", "json"), ("longpolling", "messagepack")]
)
async def test_official_client_full_tour_over_http_transports(server: HubServer, mode: str, protocol: str) -> None:
    js = await JsClient.start("basic", f"{server.url}/chatHub", protocol, mode)
    try:
        events = {e["event"]: e for e in await js.finish(timeout_s=40)}
    finally:
        await js.stop()
    assert events["started"]["transport"] == _TRANSPORT_CLASS[mode]
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
    # stop() ended the connection on the server too (long polling by DELETE, SSE by dropping it).
    for _ in range(100):
        if server.connection_count == 0:
            break
        await asyncio.sleep(0.05)
    assert server.connection_count == 0


async def test_broadcasts_reach_clients_on_every_transport(server: HubServer) -> None:
    """One broadcast from the server reaches a WebSocket, an SSE and a long-polling client."""
    listeners = [
        await JsClient.start("listen", f"{server.url}/chatHub", protocol, mode)
        for mode, protocol in (("websockets", "json"), ("sse", "json"), ("longpolling", "messagepack"))
    ]
    try:
        for listener in listeners:
            await listener.wait_for("ready", timeout_s=30)
        await server.lifetime().send("all", "", "ReceiveMessage", ("server", "to-everyone"))
        for listener in listeners:
            event = await listener.wait_for("message", timeout_s=30)
            assert (event["user"], event["message"]) == ("server", "to-everyone")
    finally:
        for listener in listeners:
            await listener.stop()


async def test_a_disabled_transport_is_not_offered_and_the_client_fails() -> None:
    hub_server = HubServer(transport_settings=TransportSettings(enabled=frozenset({TransportType.WEBSOCKETS})))
    await hub_server.listen("127.0.0.1", 0)
    js = await JsClient.start("basic", f"{hub_server.url}/chatHub", "json", "longpolling")
    try:
        message = await js.expect_failure(timeout_s=30)
    finally:
        await js.stop()
        await hub_server.close()
    # Negotiate listed only WebSockets, which this client was told not to use: nothing is left.
    assert "'WebSockets' is disabled by the client" in message, message
    assert "LongPolling failed" not in message, message
