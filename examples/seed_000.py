"""The examples of seed 000 (shallot's websocket handlers), verbatim but for the ``scallion`` imports.

Three changes, all forced by running the examples together: each handler has its own name (the seed calls
all three ``handle_ws_echo``), the second example passes ``on_disconnect=my_disconnect`` and
``on_close=my_close`` (the seed passes ``standard_disconnect``, a name it never defines), and ``something()``
is defined: it lets a client in when the query string carries ``token=let-me-in``.
Serve it with ``scallion run examples/seed_000.py``.
"""

from scallion import build_server, standard_not_found, websocket, ws_accept, ws_close, ws_send
from scallion.middlewares import apply_middleware, wrap_routes


@websocket
async def handle_ws_echo(scope, receiver):
    async for message in receiver:
        yield {"text": f"@ECHO: {message}", "type": "websocket.send"}
        if message == "exit":
            yield ws_send("bybye")
            yield ws_close(1001)


async def my_disconnect(scope):
    print("-> Client Disconnected!")


async def my_close(scope):
    print("--> The connection has been closed! Either by the server or by the client")


@websocket(on_disconnect=my_disconnect, on_close=my_close)
async def handle_ws_echo_hooks(scope, receiver):
    async for message in receiver:
        yield ws_send(f"@ECHO: {message}")


def something():
    return websocket.query_params.token == "let-me-in"


async def connection_accept(scope):
    if something():
        return ws_accept(subprotocol="sub-123")  # == {"type": "websocket.accept", "subprotocol": "sub-123"}
    else:
        return ws_close()


@websocket(on_connect=connection_accept)
async def handle_ws_echo_guarded(scope, receiver):
    async for message in receiver:
        yield ws_send(f"@ECHO: {message}")


routes = [
    ("/", ["WS"], handle_ws_echo),
    ("/echo", ["WS"], handle_ws_echo),
    ("/hooks", ["WS"], handle_ws_echo_hooks),
    ("/guarded", ["WS"], handle_ws_echo_guarded),
]
app = build_server(apply_middleware(wrap_routes(routes))(standard_not_found))
