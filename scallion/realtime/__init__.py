"""Realtime from the browser: typed events with replies over one websocket, channels with resume and presence
over :mod:`scallion.pubsub`, and the JavaScript client that speaks it (``client.js``, served by the endpoint).

* :class:`Realtime`: the endpoint; ``@rt.on("say") async def say(msg: Say) -> Ack``; ``rt.mount(app, path)``
  or ``rt.routes(path)`` for a routing table; ``await rt.publish(channel, data)`` from anywhere.
* :class:`Client`: one connected socket, as handlers see it.
* :class:`RealtimeError`: raised in a handler, an error reply with your code.
* :mod:`scallion.realtime.protocol`: the wire format (docs/realtime.md).
"""

from .endpoint import Client, EventHandler, Realtime, RealtimeError, client_source

__all__ = ["Client", "EventHandler", "Realtime", "RealtimeError", "client_source"]
