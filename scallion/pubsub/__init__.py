"""Publish/subscribe for websockets: fan a message out to every socket subscribed to a channel.

* :class:`MemoryBroker`: the subscribers of one process (one server worker).
* :class:`RedisBroker`: the subscribers of every process connected to one Redis server, so an app scales out
  to several workers and machines. Each process keeps one Redis subscription per channel, however many sockets
  listen to it, and fans messages out locally.
* :func:`merge`: wait on the client and a subscription at once (``async for item in merge(receiver, sub)``).

``async with broker.subscribe("room") as subscription: async for message in subscription`` gives
:class:`Message` tuples ``(channel, data, offset)``; ``await broker.publish("room", data)`` sends ``str`` or
``bytes`` and returns the message's offset. Each channel keeps a bounded :class:`History`
(``await broker.history(room)``), so ``broker.subscribe(room, since=offset)`` replays what a reconnecting client
missed (``subscription.recovered`` says whether it could). ``async with broker.join(room, member_id, info=...)``
makes a member present, ``await broker.members(room)`` lists them, and ``subscribe(room, presence=True)`` adds
:class:`Presence` join/leave events.
:class:`BrokerUnavailable`: the broker's server (Redis) cannot be reached, so that publish was not delivered or
that subscription never started.
"""

from .broker import Broker, BrokerUnavailable, Membership, Message, Presence, Subscription, SubscriptionOverflow
from .history import History
from .memory import MemoryBroker
from .merge import merge
from .redis import RedisBroker

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "History",
    "Membership",
    "MemoryBroker",
    "Message",
    "Presence",
    "RedisBroker",
    "Subscription",
    "SubscriptionOverflow",
    "merge",
]
