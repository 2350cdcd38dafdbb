"""The benchmarked applications: one module per framework, each serving the same endpoints.

Every module exposes ``app`` and serves, where the framework can:

==============  ==========================================================================
``GET /``       ``Hello, World!`` as ``text/plain``
``GET /json``   ``{"message": "Hello, World!"}`` as ``application/json``
``WS /ws``      echo every message back (text as text, bytes as bytes)
``WS /sub``     a broadcast subscriber: stays connected and receives what is published
``WS /pub``     the broadcast publisher: every message it sends goes to every subscriber
==============  ==========================================================================

scallion's module serves each websocket endpoint twice: ``/ws``, ``/sub``, ``/pub`` in the async-generator
style and ``/ws-obj``, ``/sub-obj``, ``/pub-obj`` in the ``websocket``-object style.
"""

HELLO = "Hello, World!"
"""The body of ``GET /``."""

JSON_DATA = {"message": "Hello, World!"}
"""The data of ``GET /json``."""
