"""A chat over ``scallion.pubsub`` in both handler styles, for the pub/sub tests (in process and on real servers).

``WS /gen/{room}`` (seed 000: ``merge(receiver, subscription)``) and ``WS /obj/{room}`` (Emmett style): every
message a client sends is published to the room and every client of the room, on any server process sharing the
broker, receives it. A client first receives ``"ready"`` once its subscription is listening. ``chat_app(broker)``
makes one; the module's ``app`` uses a RedisBroker on ``$SCALLION_TEST_REDIS`` (a MemoryBroker without it)."""

import os

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

    return app


URL = os.environ.get("SCALLION_TEST_REDIS")
broker = RedisBroker(URL) if URL else MemoryBroker()
app = chat_app(broker)


@app.on_stop
async def close_broker():
    await broker.close()
