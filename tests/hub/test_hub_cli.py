"""``simscale hub serve`` and ``simscale hub cluster`` as a user runs them, TLS included."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import trustme
from hub_testing import RawClient, ServerProcess

from simscale.cli import main


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["hub", "serve", "--backplane", "kafka://x"], "--backplane"),
        (["hub", "serve", "--port", "70000"], "--port"),
        (["hub", "serve", "--max-connections", "0"], "max_connections"),
        (["hub", "serve", "--max-groups-per-connection", "0"], "max_groups_per_connection"),
        (["hub", "serve", "--max-group-name-bytes", "0"], "max_group_name_bytes"),
        (["hub", "serve", "--max-streams-per-connection", "0"], "max_streams_per_connection"),
        (["hub", "serve", "--max-reservations", "0"], "max_reservations"),
        (["hub", "cluster", "--servers", "1", "--max-reservations-per-address", "0"], "max_reservations_per_address"),
        (["hub", "serve", "--negotiate-ttl-s", "0"], "negotiate_ttl_s"),
        (["hub", "serve", "--keepalive-interval-s", "40"], "client_timeout_s"),
        (["hub", "serve", "--tls-cert", "only-cert.pem"], "--tls-key"),
        (["hub", "serve", "--tls-cert", "missing.pem", "--tls-key", "missing.pem"], "TLS"),
        (["hub", "serve", "--token", "no-equals-sign"], "TOKEN=USER"),
        (["hub", "serve", "--users-from-tokens", "--token", "t=u"], "--users-from-tokens"),
        (["hub", "cluster", "--servers", "0"], "--servers"),
        (["hub", "cluster", "--servers", "2", "--backplane", "nope"], "--backplane"),
        (["hub", "serve", "--transports", "carrier-pigeon"], "transports must be"),
        (["hub", "cluster", "--servers", "2", "--transports", ""], "transports must be"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and fragment in error


async def test_serve_prints_its_url_and_stops_cleanly_on_sigterm() -> None:
    server = await ServerProcess("--keepalive-interval-s", "5", "--client-timeout-s", "10").start()
    assert server.url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as session:
        client = await RawClient.connect(session, server.ws)
        assert (await client.invoke("Echo", "cli")).result == "cli"
        assert await server.stop() == 0
        close = await client.receive_close()  # shutdown says goodbye, with allowReconnect
        assert close.allow_reconnect


async def test_serve_offers_only_the_transports_it_is_given() -> None:
    server = await ServerProcess("--transports", "LongPolling,ServerSentEvents").start()
    try:
        async with aiohttp.ClientSession() as session:
            negotiate = await session.post(f"{server.url}/chatHub/negotiate?negotiateVersion=1")
            offered = [t["transport"] for t in (await negotiate.json())["availableTransports"]]
            assert offered == ["ServerSentEvents", "LongPolling"]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(server.ws)
            assert refused.value.status == 404
    finally:
        await server.stop()


async def test_serve_over_tls(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(cert_file)
    for extra in certificate.cert_chain_pems[1:]:
        extra.write_to_path(cert_file, append=True)
    certificate.private_key_pem.write_to_path(key_file)
    server = await ServerProcess("--tls-cert", str(cert_file), "--tls-key", str(key_file)).start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        client_context = ssl.create_default_context()
        authority.configure_trust(client_context)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context)) as session:
            negotiate = await session.post(f"{server.url}/chatHub/negotiate?negotiateVersion=1")
            token = (await negotiate.json())["connectionToken"]
            client = await RawClient.connect(session, server.ws + f"?id={token}")
            assert server.ws.startswith("wss://")
            assert (await client.invoke("Echo", "over tls")).result == "over tls"
            await client.close()
        async with aiohttp.ClientSession() as untrusting:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await untrusting.get(f"{server.url}/health")
    finally:
        await server.stop()


@pytest.mark.redis
@pytest.mark.slow
def test_cluster_starts_its_own_redis_and_servers_that_share_it() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simscale.cli", "hub", "cluster", "--servers", "2", "--backplane", "redis"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        while not lines or lines[-1] != "cluster ready":
            line = process.stdout.readline()
            assert line, f"cluster exited early: {lines}"
            lines.append(line.strip())
            assert len(lines) < 10, lines
        urls = [line.rsplit(" ", 1)[1] for line in lines if " listening on " in line]
        assert len(urls) == 2 and lines[0].startswith("redis on redis://127.0.0.1:")

        async def cross_server_message() -> None:
            async with aiohttp.ClientSession() as session:
                a = await RawClient.connect(session, urls[0].replace("http", "ws", 1) + "/chatHub")
                b = await RawClient.connect(session, urls[1].replace("http", "ws", 1) + "/chatHub")
                await a.invoke("SendMessage", "a", "across")
                message = await b.receive()
                assert message.arguments == ("a", "across")  # type: ignore[union-attr]
                for client in (a, b):
                    await client.close()

        asyncio.run(cross_server_message())
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


async def test_serve_applies_the_per_connection_bounds_given_as_flags(session: aiohttp.ClientSession) -> None:
    async with ServerProcess("--max-groups-per-connection", "1", "--max-streams-per-connection", "1") as server:
        client = await RawClient.connect(session, server.ws)
        assert (await client.invoke("JoinGroup", "a")).error is None
        refused = await client.invoke("JoinGroup", "b")
        assert refused.error is not None and "max_groups_per_connection (1)" in refused.error
        await client.close()


async def test_serve_with_users_from_tokens_sends_to_every_connection_of_a_user(
    session: aiohttp.ClientSession,
) -> None:
    async with ServerProcess("--users-from-tokens") as server:
        tabs = [
            await RawClient.connect(session, server.ws, headers={"Authorization": "Bearer ann"}) for _ in range(2)
        ]
        other = await RawClient.connect(session, f"{server.ws}?access_token=bob")
        assert (await other.invoke("SendToUser", "ann", "bob", "hi ann")).error is None
        for tab in tabs:
            message = await tab.receive()
            assert message.arguments == ("bob", "hi ann")  # type: ignore[union-attr]
        assert (await other.invoke("Echo", "x")).result == "x"
        assert other.inbox == []  # bob is not ann
        for client in (*tabs, other):
            await client.close()
