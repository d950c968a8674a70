"""The benchmark's one load generator: lean asyncio WebSocket clients (:mod:`rawws`), run as its own process.

The harness starts ``python -m benchmarks.hub.loadgen SPEC_JSON`` and then speaks a line protocol:
one JSON command per stdin line, one JSON answer per stdout line. Commands:

- ``{"cmd": "connect", "count": N}``: open N more clients, spread round-robin over the spec's URLs.
- ``{"cmd": "sleep", "seconds": S}``: hold every client idle (keep-alives still flow).
- ``{"cmd": "close", "keep": K}``: close all clients but the first K.
- ``{"cmd": "burst", "broadcasts": B, "drain_s": D}``: send B broadcasts back to back, wait for them.
- ``{"cmd": "rate", "deliveries_per_s": R, "duration_s": T, "drain_s": D}``: open-loop paced sends.
- ``{"cmd": "sustain", "seconds": S, "in_flight": F}``: for S seconds, F workers each connect a client
  (the stack's negotiate, the WebSocket upgrade, its handshake), drop it and start the next one.
- ``{"cmd": "quit"}``.

Every answer carries the load generator's own CPU seconds and wall seconds for that command, so the
harness can tell when the load generator, not the server, is the bottleneck.

A thin adapter per peer does the framing: raw text for the floor, Engine.IO/Socket.IO v4 text packets,
and SignalR JSON or MessagePack through ``simscale.protocol``. Each broadcast carries a marker
``~T<phase>:<actual send ns>~``; receivers find the marker in the raw frame (no object kept per
delivery) and append the latency to an ``array('q')`` that becomes a numpy array at the end. Frames are
parsed in the connection's ``data_received`` and stamped when their bytes were read from the socket,
with no task per client (see :mod:`simscale.client.websocket` for why that matters here).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import resource
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from simscale.client.websocket import RawWebSocket
from simscale.client.websocket import connect as ws_connect

MARK = "~T"
CONNECT_CONCURRENCY = 256
"""Connections being opened at once; a few hundred keeps the accept queue busy without timeouts."""
SIGNALR_KEEPALIVE_S = 15.0
"""SignalR clients ping every 15 s (servers drop a client silent for 30 s)."""
SUSTAIN_IN_FLIGHT = 100
"""Clients being connected at once in the sustained-connects figure."""
SUSTAIN_STEP_TIMEOUT_S = 10.0
"""Longest one step of one sustained connect (negotiate, upgrade, handshake) may take: a failure."""
_LINGER_OFF = struct.pack("ii", 1, 0)
"""SO_LINGER on with 0 s: closing sends RST, so tens of thousands of dropped clients leave no TIME_WAIT
sockets behind to exhaust the loopback's ephemeral ports."""


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Adapter:
    """How one peer's wire protocol opens a client, frames a broadcast and answers keep-alives."""

    path = "/"
    keepalive_frame: str | bytes | None = None

    async def negotiate(self, http: aiohttp.ClientSession, base_url: str) -> str:
        """What the stack's client asks over HTTP before its WebSocket; the WebSocket path to open."""
        return self.path

    async def open(self, ws: RawWebSocket) -> None:
        """Complete the protocol's own handshake after the WebSocket upgrade."""

    def broadcast_frame(self, payload: str) -> str | bytes:
        """Frame a request asking the server to send ``payload`` to every client."""
        raise NotImplementedError

    def control_reply(self, data: str) -> str | None:
        """Answer a protocol control frame (a ping), or None."""
        return None


class FloorAdapter(Adapter):
    """Raw text: whatever a client sends, the floor server writes to everyone."""

    path = "/ws"

    async def negotiate(self, http: aiohttp.ClientSession, base_url: str) -> str:
        """``POST /negotiate`` (the floor's answer is a bare id) and the socket for it."""
        async with http.post(base_url + "/negotiate") as response:
            response.raise_for_status()
            body = await response.json()
        return f"{self.path}?id={body['connectionId']}"

    def broadcast_frame(self, payload: str) -> str:
        """The payload itself."""
        return payload


class SocketIoAdapter(Adapter):
    """Engine.IO v4 + Socket.IO v4 text packets over a WebSocket-only transport.

    No HTTP negotiate: a WebSocket-only socket.io client gets its session id in the Engine.IO open
    packet on the socket itself (the servers refuse the polling transport), so `negotiate` is empty.
    """

    path = "/socket.io/?EIO=4&transport=websocket"

    async def open(self, ws: RawWebSocket) -> None:
        """Read the Engine.IO open packet, join the default namespace, wait for its CONNECT."""
        opened = await ws.receive_str()
        if not opened.startswith("0"):
            raise ConnectionError(f"unexpected Engine.IO open packet {opened[:40]!r}")
        ws.send_str("40")
        while True:
            packet = await ws.receive_str()
            if packet.startswith("40"):
                return
            if packet == "2":
                ws.send_str("3")
                continue
            raise ConnectionError(f"unexpected Socket.IO packet {packet[:40]!r}")

    def broadcast_frame(self, payload: str) -> str:
        """An EVENT packet ``broadcast`` the peer servers relay to everyone as ``msg``."""
        return '42["broadcast",' + json.dumps(payload) + "]"

    def control_reply(self, data: str) -> str | None:
        """Engine.IO: the server pings ("2"), the client pongs ("3")."""
        return "3" if data == "2" else None


class SignalRAdapter(Adapter):
    """SignalR hub protocol (JSON or MessagePack) with ``simscale.protocol`` doing the framing."""

    path = "/chatHub"

    def __init__(self, protocol_name: str) -> None:
        """Load the codec; fall back to a minimal JSON encoder only if simscale.protocol is absent."""
        self.protocol_name = protocol_name
        self.framing = "simscale.protocol"
        self._encode: Callable[[str], bytes]
        try:
            from simscale.protocol.handshake import encode_handshake_request
            from simscale.protocol.json_protocol import JsonHubProtocol
            from simscale.protocol.messages import InvocationMessage, PingMessage
            from simscale.protocol.msgpack_protocol import MessagePackHubProtocol

            codec = JsonHubProtocol() if protocol_name == "json" else MessagePackHubProtocol()
            self._handshake = encode_handshake_request(protocol_name, 1)
            self._encode = lambda payload: codec.encode(InvocationMessage("SendMessage", ("u", payload)))
            ping = codec.encode(PingMessage())
        except ImportError:
            if protocol_name != "json":
                raise
            self.framing = "built-in JSON (simscale.protocol not importable)"
            self._handshake = b'{"protocol":"json","version":1}\x1e'
            self._encode = lambda payload: (
                json.dumps({"type": 1, "target": "SendMessage", "arguments": ["u", payload]}) + "\x1e"
            ).encode()
            ping = b'{"type":6}\x1e'
        self.binary = protocol_name != "json"
        self.keepalive_frame = ping if self.binary else ping.decode()

    async def negotiate(self, http: aiohttp.ClientSession, base_url: str) -> str:
        """``POST {path}/negotiate?negotiateVersion=1``, as every SignalR client does first."""
        async with http.post(f"{base_url}{self.path}/negotiate?negotiateVersion=1") as response:
            response.raise_for_status()
            body = await response.json()
        return f"{self.path}?id={body['connectionToken']}"

    async def open(self, ws: RawWebSocket) -> None:
        """Send the handshake request and wait for the empty handshake response."""
        ws.send_str(self._handshake.decode())
        text = await ws.receive_str()
        if not text.startswith("{}"):
            raise ConnectionError(f"handshake refused: {text[:80]!r}")

    def broadcast_frame(self, payload: str) -> str | bytes:
        """A non-blocking ``SendMessage("u", payload)`` invocation."""
        frame = self._encode(payload)
        return frame if self.binary else frame.decode()


def make_adapter(name: str, signalr_protocol: str = "json") -> Adapter:
    """The adapter for a peer's wire protocol: ``floor``, ``socketio`` or ``signalr``."""
    if name == "floor":
        return FloorAdapter()
    if name == "socketio":
        return SocketIoAdapter()
    if name == "signalr":
        return SignalRAdapter(signalr_protocol)
    raise ValueError(f"adapter must be floor, socketio or signalr, not {name!r}")


@dataclass
class Client:
    """One open WebSocket (its frames are handled in its protocol callback, no task)."""

    ws: RawWebSocket
    server: int
    """Index of the URL (server) it is connected to; the sender is a client of server 0."""


class LoadGenerator:
    """Opens clients, sends broadcasts, and times every delivery of the current phase."""

    def __init__(self, spec: dict[str, Any]) -> None:
        """Configure from the harness's spec (urls, adapter, optional TLS CA file)."""
        self.urls: list[str] = list(spec["urls"])
        self.adapter = make_adapter(spec["adapter"], spec.get("signalr_protocol", "json"))
        self.ssl: ssl.SSLContext | None = None
        if spec.get("tls_ca"):
            self.ssl = ssl.create_default_context(cafile=spec["tls_ca"])
        self.clients: list[Client] = []
        self.phase = 0
        self.latencies_ns = array.array("q")
        self.received = 0
        self.stale = 0
        self.last_receive_ns = 0
        self.failures: dict[str, int] = {}
        self.reader_errors: dict[str, int] = {}
        self._sender_ws: RawWebSocket | None = None
        self._keepalive_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the keep-alive ticker (when the protocol has client pings)."""
        if self.adapter.keepalive_frame is not None:
            self._keepalive_task = asyncio.create_task(self._keepalive())

    async def stop(self) -> None:
        """Drop every client at once."""
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        for client in self.clients:
            client.ws.abort()
        self.clients = []

    # --- receiving ---------------------------------------------------------------------------------

    def _on_frame(self, ws: RawWebSocket, payload: bytes, received_ns: int) -> None:
        """The hot path, called from ``data_received``: find markers, record latencies, answer pings."""
        try:
            data = payload.decode("latin-1")  # the marker is ASCII: positions stay, nothing can fail
            start = data.find(MARK)
            if start < 0:
                reply = self.adapter.control_reply(data)
                if reply is not None:
                    ws.send_str(reply)
                return
            latencies = self.latencies_ns
            phase_now = self.phase
            while start >= 0:
                end = data.find("~", start + 2)
                phase, _, sent = data[start + 2 : end].partition(":")
                if int(phase) == phase_now:
                    latencies.append(received_ns - int(sent))
                    self.received += 1
                    self.last_receive_ns = received_ns
                else:
                    self.stale += 1
                start = data.find(MARK, end + 1)
        except Exception as error:  # a parsing bug must not pass silently
            self.reader_errors[type(error).__name__] = self.reader_errors.get(type(error).__name__, 0) + 1

    async def _keepalive(self) -> None:
        """Send the protocol's client ping to every client once per interval, spread over it."""
        frame = self.adapter.keepalive_frame
        slices = 15
        tick = 0
        while True:
            await asyncio.sleep(SIGNALR_KEEPALIVE_S / slices)
            for client in self.clients[tick % slices :: slices]:
                if isinstance(frame, bytes):
                    client.ws.send_bytes(frame)
                elif frame is not None:
                    client.ws.send_str(frame)
            tick += 1

    # --- commands ----------------------------------------------------------------------------------

    async def connect(self, count: int) -> dict[str, Any]:
        """Open ``count`` clients round-robin over the URLs; report the rate and failures."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        first = len(self.clients)
        opened = 0

        async def open_one(slot: int) -> None:
            nonlocal opened
            server = (first + slot) % len(self.urls)
            url = self.urls[server] + self.adapter.path
            async with gate:
                ws: RawWebSocket | None = None
                try:
                    ws = await asyncio.wait_for(ws_connect(url, self.ssl), timeout=30)
                    await asyncio.wait_for(self.adapter.open(ws), timeout=10)
                except Exception as error:  # counted, reported, never fatal
                    kind = type(error).__name__
                    self.failures[kind] = self.failures.get(kind, 0) + 1
                    if ws is not None:
                        ws.abort()
                    return
            ws.on_frame = self._on_frame
            # Registered at once so the keep-alive ticker covers it during a long connect phase.
            self.clients.append(Client(ws, server))
            opened += 1

        started = time.perf_counter()
        await asyncio.gather(*(open_one(slot) for slot in range(count)))
        elapsed = time.perf_counter() - started
        return {
            "opened": opened,
            "failed": count - opened,
            "failures": dict(self.failures),
            "clients": len(self.clients),
            "connect_s": elapsed,
            "connections_per_s": opened / elapsed if elapsed > 0 else 0.0,
        }

    async def sustain(self, seconds: float, in_flight: int = SUSTAIN_IN_FLIGHT) -> dict[str, Any]:
        """Connect clients back to back for ``seconds`` with ``in_flight`` at once; each one negotiates,
        upgrades, completes the handshake and is dropped (a reconnect storm). Connects per second."""
        completed = 0
        failures: dict[str, int] = {}
        deadline = time.perf_counter() + seconds
        step_s = SUSTAIN_STEP_TIMEOUT_S
        adapter = self.adapter
        connector = aiohttp.TCPConnector(limit=in_flight, ssl=self.ssl if self.ssl is not None else False)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def worker(slot: int) -> None:
                nonlocal completed
                ws_base = self.urls[slot % len(self.urls)]
                http_base = "http" + ws_base[2:]  # ws://… → http://…, wss://… → https://…
                while time.perf_counter() < deadline:
                    ws: RawWebSocket | None = None
                    try:
                        path = await asyncio.wait_for(adapter.negotiate(http, http_base), step_s)
                        ws = await asyncio.wait_for(ws_connect(ws_base + path, self.ssl), step_s)
                        await asyncio.wait_for(adapter.open(ws), step_s)
                        completed += 1
                    except Exception as error:  # counted, reported, never fatal
                        kind = type(error).__name__
                        failures[kind] = failures.get(kind, 0) + 1
                    finally:
                        if ws is not None:
                            _drop(ws)

            started = time.perf_counter()
            await asyncio.gather(*(worker(slot) for slot in range(in_flight)))
            elapsed = time.perf_counter() - started
        return {
            "connects": completed,
            "failed": sum(failures.values()),
            "failures": failures,
            "in_flight": in_flight,
            "sustain_s": elapsed,
            "connects_per_s": completed / elapsed if elapsed > 0 else 0.0,
        }

    async def sleep(self, seconds: float) -> dict[str, Any]:
        """Hold the clients idle."""
        await asyncio.sleep(seconds)
        return {"clients": self.live_clients()}

    def live_clients(self) -> int:
        """Clients whose socket is still open."""
        return sum(1 for client in self.clients if not client.ws.closed)

    def sender(self) -> Client:
        """The client that sends every broadcast: the first one connected to server 0."""
        return next(client for client in self.clients if client.server == 0)

    async def close(self, keep: int) -> dict[str, Any]:
        """Close all clients but ``keep`` of them (the sender always stays while keep > 0)."""
        if keep > 0:
            sender = self.sender()
            others = [client for client in self.clients if client is not sender]
            self.clients, doomed = [sender, *others[: keep - 1]], others[keep - 1 :]
        else:
            self.clients, doomed = [], self.clients
        gate = asyncio.Semaphore(4 * CONNECT_CONCURRENCY)

        async def close_one(client: Client) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.ws.close(), timeout=3)

        await asyncio.gather(*(close_one(client) for client in doomed))
        return {"closed": len(doomed), "clients": len(self.clients)}

    def _new_phase(self) -> None:
        self._sender_ws = self.sender().ws
        self.phase += 1
        del self.latencies_ns[:]
        self.received = 0
        self.stale = 0
        self.last_receive_ns = 0

    async def _send(self, frame: str | bytes) -> None:
        ws = self._sender_ws
        assert ws is not None
        if isinstance(frame, bytes):
            ws.send_bytes(frame)
        else:
            ws.send_str(frame)

    async def _drain(self, expected: int, drain_s: float) -> None:
        deadline = time.monotonic() + drain_s
        while self.received < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def _latency_summary(self) -> dict[str, Any]:
        values_ms = np.frombuffer(self.latencies_ns, dtype=np.int64).astype(np.float64) / 1e6
        if values_ms.size == 0:
            return {"p50_ms": None, "p99_ms": None, "max_ms": None}
        p50, p99 = np.percentile(values_ms, [50, 99])
        return {"p50_ms": float(p50), "p99_ms": float(p99), "max_ms": float(values_ms.max())}

    async def burst(self, broadcasts: int, drain_s: float) -> dict[str, Any]:
        """Send ``broadcasts`` back to back from client 0; deliveries/s until the last one lands."""
        self._new_phase()
        recipients = self.live_clients()
        expected = broadcasts * recipients
        adapter = self.adapter
        first_ns = time.perf_counter_ns()
        for _ in range(broadcasts):
            await self._send(adapter.broadcast_frame(f"{MARK}{self.phase}:{time.perf_counter_ns()}~"))
        await self._drain(expected, drain_s)
        span_s = max(self.last_receive_ns - first_ns, 1) / 1e9
        result = {
            "recipients": recipients,
            "broadcasts": broadcasts,
            "expected": expected,
            "delivered": self.received,
            "delivered_fraction": self.received / expected if expected else 0.0,
            "span_s": span_s,
            "deliveries_per_s": self.received / span_s if self.received else 0.0,
            "reader_errors": dict(self.reader_errors),
        }
        result.update(self._latency_summary())
        return result

    async def rate(self, deliveries_per_s: float, duration_s: float, drain_s: float) -> dict[str, Any]:
        """Open-loop broadcasts paced to offer ``deliveries_per_s``; latency from each actual send."""
        self._new_phase()
        recipients = self.live_clients()
        broadcasts_per_s = deliveries_per_s / max(recipients, 1)
        total = max(1, round(broadcasts_per_s * duration_s))
        interval_ns = int(1e9 / broadcasts_per_s)
        adapter = self.adapter
        start_ns = time.perf_counter_ns() + 1_000_000
        late_sends = 0
        for index in range(total):
            due_ns = start_ns + index * interval_ns
            wait_ns = due_ns - time.perf_counter_ns()
            if wait_ns > 0:
                await asyncio.sleep(wait_ns / 1e9)
            elif wait_ns < -5_000_000:
                late_sends += 1
            # Stamped when actually sent: asyncio's ~1 ms timer slack would otherwise bias every peer's
            # latency alike; a sender that falls behind its schedule shows up in late_sends instead.
            await self._send(adapter.broadcast_frame(f"{MARK}{self.phase}:{time.perf_counter_ns()}~"))
        send_span_s = (time.perf_counter_ns() - start_ns) / 1e9
        expected = total * recipients
        await self._drain(expected, drain_s)
        result = {
            "recipients": recipients,
            "offered_deliveries_per_s": deliveries_per_s,
            "broadcasts": total,
            "sent_broadcasts_per_s": total / send_span_s if send_span_s > 0 else 0.0,
            "late_sends": late_sends,
            "expected": expected,
            "delivered": self.received,
            "delivered_fraction": self.received / expected if expected else 0.0,
            "stale": self.stale,
            "reader_errors": dict(self.reader_errors),
        }
        result.update(self._latency_summary())
        return result


def _drop(ws: RawWebSocket) -> None:
    """Drop a client with a reset, leaving no TIME_WAIT socket behind."""
    transport = ws._transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_OFF)
    ws.abort()


async def serve_commands(spec: dict[str, Any]) -> None:
    """Read commands from stdin, answer each with one JSON line on stdout."""
    generator = LoadGenerator(spec)
    await generator.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    ready = {"event": "ready", "fd_limit": raise_fd_limit()}
    if isinstance(generator.adapter, SignalRAdapter):
        ready["framing"] = generator.adapter.framing
    print(json.dumps(ready), flush=True)
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            command = json.loads(line)
            name = command.pop("cmd")
            if name == "quit":
                break
            cpu_before, wall_before = time.process_time(), time.perf_counter()
            try:
                answer = await getattr(generator, name)(**command)
            except Exception as error:
                answer = {"error": f"{type(error).__name__}: {error}"}
            cpu_s = time.process_time() - cpu_before
            wall_s = time.perf_counter() - wall_before
            answer.update({"cmd": name, "loadgen_cpu_s": cpu_s, "wall_s": wall_s})
            answer["loadgen_cpu_fraction"] = cpu_s / wall_s if wall_s > 0 else 0.0
            print(json.dumps(answer), flush=True)
    finally:
        await generator.stop()


def main() -> None:
    """Entry point: ``python -m benchmarks.hub.loadgen SPEC_JSON``."""
    raise_fd_limit()
    spec = json.loads(sys.argv[1])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_commands(spec))


if __name__ == "__main__":
    main()
