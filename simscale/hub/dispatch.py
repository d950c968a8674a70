"""From a received hub message to a hub method call and back to a Completion.

The dispatcher is the hub's receptionist: it looks the target up in the hub class's method table
(built once), checks the arguments, makes a fresh hub object, awaits the method and turns what
happened into a Completion (a result, a void, or an error without internal details). Streaming
methods (async generators) answer with StreamItems and a final Completion, and are the only
invocations that get a task of their own, so that a CancelInvocation can stop them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from simscale.hub.binding import HubMethod, build_method_table, check_arguments, normalize_target
from simscale.hub.connection import HubConnection
from simscale.hub.hub import Hub, HubError
from simscale.hub.lifetime import HubLifetimeManager
from simscale.hub.metrics import HubCounters
from simscale.protocol import (
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)

__all__ = ["HubDispatcher"]

_log = logging.getLogger(__name__)

_ITEMS_PER_YIELD = 32
"""A stream gives the event loop a turn at least this often."""


def _failed_to_invoke(target: str, detail: str) -> str:
    return f"Failed to invoke '{target}' due to an error on the server. {detail}"


def _unexpected(target: str, error: BaseException) -> str:
    text = f"An unexpected error occurred invoking '{target}' on the server."
    if isinstance(error, HubError):
        text += f" HubException: {error}"
    return text


class HubDispatcher:
    """Calls the methods of one hub class for the connections of one hub endpoint.

    Args:
        hub_class: the :class:`Hub` subclass.
        lifetime: the hub's connections and fan-out.
        counters: the server's counters.
        max_parallel_invocations: invocations one connection may run at once.
        max_streams_per_connection: server-to-client streams one connection may run at once.
    """

    def __init__(
        self,
        hub_class: type[Hub],
        lifetime: HubLifetimeManager,
        counters: HubCounters,
        max_parallel_invocations: int = 1,
        max_streams_per_connection: int = 100,
    ) -> None:
        self.hub_class = hub_class
        self.lifetime = lifetime
        self.methods: Mapping[str, HubMethod] = build_method_table(hub_class, Hub)
        self._counters = counters
        self._max_parallel = max_parallel_invocations
        self._max_streams = max_streams_per_connection
        self._running: dict[HubConnection, set[asyncio.Task[None]]] = {}
        # A hub that does not override a lifecycle method needs no hub object made for it per connect.
        self._has_on_connected = hub_class.on_connected is not Hub.on_connected
        self._has_on_disconnected = hub_class.on_disconnected is not Hub.on_disconnected

    def _new_hub(self, connection: HubConnection) -> Hub:
        hub = self.hub_class()
        hub._attach(connection, self.lifetime)
        return hub

    async def on_connected(self, connection: HubConnection) -> None:
        """Register the connection and run the hub's ``on_connected``."""
        await self.lifetime.add_connection(connection)
        if self._has_on_connected:
            await self._new_hub(connection).on_connected()

    async def on_disconnected(self, connection: HubConnection, error: Exception | None) -> None:
        """Stop its streams and invocations, unregister it and run the hub's ``on_disconnected``."""
        tasks: list[asyncio.Task[None]] = list(self._running.pop(connection, ()))
        if connection.streams:
            tasks.extend(connection.streams.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            if self._has_on_disconnected:
                await self._new_hub(connection).on_disconnected(error)
        except Exception:
            _log.exception("on_disconnected of %s failed", self.hub_class.__name__)
        finally:
            await self.lifetime.remove_connection(connection)

    async def dispatch(self, connection: HubConnection, message: HubMessage) -> None:
        """Act on one message from a handshaken client."""
        if isinstance(message, InvocationMessage):
            if self._max_parallel == 1:
                await self.invoke(connection, message)
            else:
                await self._invoke_in_parallel(connection, message)
        elif isinstance(message, StreamInvocationMessage):
            self.start_stream(connection, message)
        elif isinstance(message, CancelInvocationMessage):
            task = connection.streams.get(message.invocation_id) if connection.streams else None
            if task is not None:
                task.cancel()
        elif isinstance(message, CloseMessage):
            connection.close()
        # Ping only refreshes liveness (done by the caller); upload-stream items, completions,
        # Ack and Sequence are ignored: no client-to-server streams, no stateful reconnect.

    async def _invoke_in_parallel(self, connection: HubConnection, message: InvocationMessage) -> None:
        running = self._running.setdefault(connection, set())
        while len(running) >= self._max_parallel:
            # Stop reading this connection until a slot frees, as ASP.NET Core does.
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.get_running_loop().create_task(self.invoke(connection, message))
        running.add(task)
        task.add_done_callback(running.discard)

    def _complete(self, connection: HubConnection, completion: CompletionMessage) -> None:
        if completion.error is not None:
            self._counters.invocation_errors += 1
        try:
            connection.send(completion)
        except ValueError:  # a result the protocol cannot represent
            connection.send(
                CompletionMessage.with_error(
                    completion.invocation_id, "The hub method returned a value that cannot be serialized."
                )
            )

    def _resolve(self, target: str, arguments: tuple[Any, ...], streaming: bool) -> HubMethod | str:
        method = self.methods.get(normalize_target(target))
        if method is None:
            return _failed_to_invoke(target, "HubException: Method does not exist.")
        if method.is_stream and not streaming:
            return f"The client attempted to invoke the streaming '{target}' method with a non-streaming invocation."
        if streaming and not method.is_stream:
            return f"The client attempted to invoke the non-streaming '{target}' method with a streaming invocation."
        problem = check_arguments(method, arguments)
        if problem is not None:
            return _failed_to_invoke(target, f"InvalidDataException: {problem}")
        return method

    async def invoke(self, connection: HubConnection, message: InvocationMessage) -> None:
        """Run a non-streaming invocation and answer it if it carries an invocation id."""
        self._counters.invocations += 1
        invocation_id = message.invocation_id
        if message.stream_ids:
            resolved: HubMethod | str = _failed_to_invoke(
                message.target, "HubException: Client-to-server streaming is not supported."
            )
        else:
            resolved = self._resolve(message.target, message.arguments, streaming=False)
        if isinstance(resolved, str):
            if invocation_id is not None:
                self._complete(connection, CompletionMessage.with_error(invocation_id, resolved))
            else:
                self._counters.invocation_errors += 1
            return
        hub = self._new_hub(connection)
        try:
            result = await getattr(hub, resolved.name)(*message.arguments)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not isinstance(error, HubError):
                _log.exception("hub method %s failed", resolved.name)
            if invocation_id is not None:
                self._complete(
                    connection,
                    CompletionMessage.with_error(invocation_id, _unexpected(message.target, error)),
                )
            else:
                self._counters.invocation_errors += 1
            return
        if invocation_id is not None:
            completion = (
                CompletionMessage.void(invocation_id)
                if result is None
                else CompletionMessage.with_result(invocation_id, result)
            )
            self._complete(connection, completion)

    def start_stream(self, connection: HubConnection, message: StreamInvocationMessage) -> None:
        """Start a streaming invocation in its own task (so that it can be cancelled)."""
        self._counters.invocations += 1
        invocation_id = message.invocation_id
        resolved = self._resolve(message.target, message.arguments, streaming=True)
        if isinstance(resolved, str):
            self._complete(connection, CompletionMessage.with_error(invocation_id, resolved))
            return
        streams = connection.streams
        if streams is None:
            streams = connection.streams = {}
        if invocation_id in streams:
            self._complete(
                connection,
                CompletionMessage.with_error(invocation_id, f"Invocation ID '{invocation_id}' is already in use."),
            )
            return
        if len(streams) >= self._max_streams:
            self._counters.stream_refusals += 1
            self._complete(
                connection,
                CompletionMessage.with_error(
                    invocation_id,
                    f"The connection already runs max_streams_per_connection ({self._max_streams}) streams.",
                ),
            )
            return
        generator = getattr(self._new_hub(connection), resolved.name)(*message.arguments)
        streams[invocation_id] = asyncio.get_running_loop().create_task(
            self._stream(connection, message.target, invocation_id, generator)
        )

    async def _stream(
        self,
        connection: HubConnection,
        target: str,
        invocation_id: str,
        generator: AsyncGenerator[Any, None],
    ) -> None:
        completion = CompletionMessage.void(invocation_id)
        try:
            sent = 0
            async for item in generator:
                if not connection.send(StreamItemMessage(invocation_id, item)):
                    return  # the connection is gone: nobody to complete to
                sent += 1
                if sent % _ITEMS_PER_YIELD == 0:
                    # A generator that never awaits must not starve every other connection.
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            pass  # CancelInvocation (or disconnect): still answer with a Completion, as the spec says
        except Exception as error:
            if not isinstance(error, HubError):
                _log.exception("stream %s failed", target)
            completion = CompletionMessage.with_error(invocation_id, _unexpected(target, error))
        finally:
            await generator.aclose()
            if connection.streams is not None:
                connection.streams.pop(invocation_id, None)
        self._complete(connection, completion)
