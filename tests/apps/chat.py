"""A chat over ``scallion.pubsub`` in both handler styles, for the pub/sub tests (in process and on real servers).

``WS /gen/{room}`` (seed 000: ``merge(receiver, subscription)``) and ``WS /obj/{room}`` (Emmett style): every
message a client sends is published to the room and every client of the room, on any server process sharing the
broker, receives it. A client first receives ``"ready"`` once its subscription is listening. ``chat_app(broker)``
makes one; the module's ``app`` uses a RedisBroker on ``$SCALLION_TEST_REDIS`` (a MemoryBroker without it), with
presence entries living ``$SCALLION_TEST_PRESENCE_TTL`` seconds (10 by default).

``WS /feed/{room}?since=<offset>&user=<member>`` only sends: it subscribes (recovering after ``since``, with
presence events), joins as ``user`` if given, then sends ``"ready <recovered> <pid>"`` (the pid of the process
holding the broker), ``"msg <offset> <data>"`` per message and ``"join <member>"``/``"leave <member>"``."""

import contextlib
import os
from urllib.parse import parse_qs

from scallion import App, websocket, ws_send
from scallion.pubsub import MemoryBroker, Message, RedisBroker, merge


def chat_app(broker):
    app = App()

    @app.websocket("/gen/{room}")
    async def chat_gen(scope, receiver, room):
        async with broker.subscribe(room) as subscription:
            yield ws_send("ready")
            async for item in merge(receiver, subscription):
                if isinstance(item, Message):
                    yield ws_send(item.data)
                else:
                    await broker.publish(room, item)

    @app.websocket("/obj/{room}")
    async def chat_obj(room):
        async with broker.subscribe(room) as subscription:
            await websocket.send("ready")
            async for item in merge(websocket, subscription):
                if isinstance(item, Message):
                    await websocket.send(item.data)
                else:
                    await broker.publish(room, item)

    @app.websocket("/feed/{room}")
    async def feed(scope, receiver, room):
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        user = query.get("user")
        async with contextlib.AsyncExitStack() as stack:
            subscription = await stack.enter_async_context(
                broker.subscribe(room, since=query.get("since"), presence=True)
            )
            if user:
                await stack.enter_async_context(broker.join(room, user, info={"user": user}))
            yield ws_send(f"ready {subscription.recovered} {os.getpid()}")
            async for item in subscription:
                if isinstance(item, Message):
                    yield ws_send(f"msg {item.offset} {item.data}")
                else:
                    yield ws_send(f"{item.event} {item.member}")

    return app


URL = os.environ.get("SCALLION_TEST_REDIS")
TTL = float(os.environ.get("SCALLION_TEST_PRESENCE_TTL", "10"))
broker = RedisBroker(URL, presence_ttl=TTL) if URL else MemoryBroker()
app = chat_app(broker)


@app.on_stop
async def close_broker():
    await broker.close()
