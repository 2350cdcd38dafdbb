"""``MemoryBroker``: publish/subscribe among the sockets of one process."""

from __future__ import annotations

from .broker import Broker, check_payload


class MemoryBroker(Broker):
    """Fans each message out to the subscribers of this process, as published (``str`` stays ``str``).

    For one server worker, and for tests; with several workers or machines use :class:`~scallion.pubsub.RedisBroker`.
    """

    async def publish(self, channel: str, data: str | bytes) -> None:
        """Queue ``data`` for every subscriber of ``channel`` in this process."""
        check_payload(data)
        self.deliver(channel, data)
