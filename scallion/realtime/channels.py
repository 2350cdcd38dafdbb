"""Channels of a realtime socket: ``$join`` and ``$leave`` over a :mod:`scallion.pubsub` broker.

Each joined channel is one task that holds the broker subscription (and the presence membership) and forwards
the channel's messages as ``$message`` events with their offsets. A join is answered once the subscription
listens: every message published after the reply reaches the client, and none is sent before the reply.

Resume: ``$join`` with ``since`` (the last offset the client saw) subscribes with ``since=``, so the messages
after it come first, then the live ones, none missing or repeated (``recovered`` in the reply says whether
history still had them all). ``history=N`` without a resumable ``since`` sends the newest N messages first:
the subscription is live before history is read, and live messages already in that batch are skipped.

A subscriber too slow for its channel (:class:`~scallion.pubsub.SubscriptionOverflow`) is closed with 1013: its
client reconnects and resumes from its last offset, which is the cheapest way to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from ..connection import WebSocketDisconnect
from ..pubsub import BrokerUnavailable, Message, SubscriptionOverflow
from . import protocol

if TYPE_CHECKING:
    from .endpoint import Client

logger = logging.getLogger("scallion.realtime")

_decode_join = msgspec.json.Decoder(protocol.Join).decode
_decode_leave = msgspec.json.Decoder(protocol.Leave).decode

TRY_AGAIN_LATER = 1013


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Channels:
    """The channels one socket has joined: name -> the task that forwards them."""

    __slots__ = ("client", "joined")

    def __init__(self, client: Client) -> None:
        self.client = client
        self.joined: dict[str, asyncio.Task[None]] = {}

    def __contains__(self, channel: str) -> bool:
        return channel in self.joined

    def __iter__(self) -> Any:
        return iter(list(self.joined))

    async def handle(self, incoming: protocol.Incoming) -> None:
        """A ``$join`` or ``$leave`` message: do it and reply (an error reply when it cannot be done)."""
        send = self.client.connection.send
        try:
            if incoming.event == protocol.JOIN:
                request = _decode_join(incoming.data)
                await self.join(request, incoming.id)
                return
            channel = _decode_leave(incoming.data).channel
            if channel not in self.joined:
                raise _Refused("not_joined", f"not in channel {channel!r}")
            await self.leave(channel)
            if incoming.id is not None:
                await send(protocol.encode(protocol.Reply(incoming.id, None)).decode())
        except msgspec.ValidationError as exc:
            await send(protocol.encode(protocol.ErrorReply(protocol.invalid_payload(exc), incoming.id)).decode())
        except _Refused as refused:
            await send(protocol.error_frame(refused.code, refused.message, incoming.id).decode())

    async def join(self, request: protocol.Join, id: int | None) -> None:
        """Join ``request.channel`` (again, if already in it), reply, then forward its messages."""
        endpoint = self.client.endpoint
        channel = request.channel
        if not channel:
            raise _Refused("invalid_payload", "a channel name is a non-empty string")
        if endpoint.broker is None:
            raise _Refused("unavailable", "this endpoint has no channels (Realtime(broker=...))")
        if endpoint.authorize is not None and not await _maybe(endpoint.authorize(self.client.scope, channel)):
            raise _Refused("forbidden", f"not allowed to join {channel!r}")
        if request.history < 0:
            raise _Refused("invalid_payload", "history is a number of messages, 0 or more")
        if channel in self.joined:
            await self.leave(channel)
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[protocol.Joined] = loop.create_future()
        go = asyncio.Event()
        task = loop.create_task(self._forward(request, ready, go))
        try:
            joined = await ready
        except BrokerUnavailable as exc:
            raise _Refused("unavailable", str(exc)) from None
        except BaseException:
            task.cancel()
            raise
        self.joined[channel] = task
        task.add_done_callback(lambda done: self._ended(channel, done))
        try:
            if id is not None:
                await self.client.connection.send(protocol.encode(protocol.Reply(id, joined)).decode())
        finally:
            go.set()

    def _ended(self, channel: str, task: asyncio.Task[None]) -> None:
        if self.joined.get(channel) is task:
            del self.joined[channel]

    async def _forward(self, request: protocol.Join, ready: asyncio.Future[protocol.Joined], go: asyncio.Event) -> None:
        client = self.client
        endpoint = client.endpoint
        broker = endpoint.broker
        assert broker is not None
        channel = request.channel
        send = client.connection.send
        try:
            async with contextlib.AsyncExitStack() as stack:
                subscription = await stack.enter_async_context(
                    broker.subscribe(channel, since=request.since, presence=request.presence)  # type: ignore[call-overload]
                )
                if endpoint.member is not None:
                    identity = await _maybe(endpoint.member(client, channel))
                    if identity is not None:
                        member_id, info = identity
                        await stack.enter_async_context(broker.join(channel, member_id, info))
                members = await broker.members(channel) if request.presence else None
                backlog: list[Message] = []
                if request.history and not subscription.recovered:
                    backlog = await broker.history(channel, limit=request.history)
                ready.set_result(protocol.Joined(channel, subscription.recovered, members))
                await go.wait()
                skip = None
                for message in backlog:
                    await send(endpoint.message_frame(message))
                if backlog and backlog[-1].offset is not None:
                    skip = broker.offset_order(backlog[-1].offset)
                async for item in subscription:
                    if type(item) is Message:
                        if skip is not None and item.offset is not None:
                            order = broker.offset_order(item.offset)
                            if order is not None and order <= skip:
                                continue  # in the history batch already
                            skip = None
                        await send(endpoint.message_frame(item))
                    else:
                        event = protocol.PresenceEvent(item.channel, item.event, item.member, item.info)
                        await send(protocol.encode(protocol.Push(protocol.PRESENCE, event)).decode())
        except SubscriptionOverflow as exc:
            logger.warning("realtime channel %r: %s; closing with 1013 (the client resumes)", channel, exc)
            await client.connection.close(TRY_AGAIN_LATER, "too slow: reconnect and resume")
        except WebSocketDisconnect:
            pass  # the client left; the endpoint's loop ends too
        except BaseException as exc:
            if not ready.done():
                if isinstance(exc, asyncio.CancelledError):
                    ready.cancel()
                else:
                    ready.set_exception(exc)
                    return
            if not isinstance(exc, (asyncio.CancelledError, Exception)):
                raise
            if isinstance(exc, Exception):
                logger.exception("realtime channel %r: forwarding failed", channel)

    async def leave(self, channel: str) -> None:
        """Stop forwarding ``channel`` (leaves its subscription and presence)."""
        task = self.joined.pop(channel, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        """Leave every channel (the socket is gone)."""
        tasks = list(self.joined.values())
        self.joined.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
