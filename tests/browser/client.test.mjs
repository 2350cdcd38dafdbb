// The JS client's logic under Node's test runner, with a scripted in-memory WebSocket (run by
// tests/test_realtime_node.py; the real-browser tests are tests/test_browser_realtime.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoff, connect, RealtimeError } from "../../scallion/realtime/client.js";

/** A WebSocket stand-in: records what the client sends; the test opens, answers and drops it. */
class FakeSocket {
  static all = [];
  constructor(url) { this.url = url; this.sent = []; FakeSocket.all.push(this); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.onclose?.({ code: 1000 }); }
  open() { this.onopen?.(); }
  deliver(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
  drop() { this.onclose?.({ code: 1006 }); }
}

const latest = () => FakeSocket.all[FakeSocket.all.length - 1];
const tick = () => new Promise((resolve) => setImmediate(resolve));
async function until(check, what) {
  for (let n = 0; n < 500; n++) { if (check()) return; await new Promise((r) => setTimeout(r, 2)); }
  assert.fail(`timed out waiting for ${what}`);
}
const options = { WebSocket: FakeSocket, minDelay: 1, maxDelay: 4, random: () => 0 };

test("backoff doubles up to the cap and jitter takes off up to its fraction", () => {
  const o = { minDelay: 100, maxDelay: 1000, factor: 2, jitter: 0.5, random: () => 0 };
  assert.deepEqual([0, 1, 2, 3, 4, 10].map((n) => backoff(n, o)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(backoff(2, { ...o, random: () => 1 }), 200);
  assert.equal(backoff(2, { ...o, random: () => 0.5 }), 300);
});

test("requests wait for the socket, resolve with their reply, reject with error replies and timeouts", async () => {
  const rt = connect("ws://x/rt", options);
  const states = [];
  rt.onState((s) => states.push(s));
  const first = rt.request("say", { text: "hi" });
  const second = rt.request("say", { text: 5 });
  const late = rt.request("slow", null, { timeout: 20 });
  assert.equal(latest().sent.length, 0);
  latest().open();
  assert.deepEqual(latest().sent.map((f) => f.id), [1, 2, 3]);
  assert.deepEqual(latest().sent[0], { event: "say", data: { text: "hi" }, id: 1 });
  latest().deliver({ id: 2, error: { code: "invalid_payload", message: "bad", field: "$.text" } });
  latest().deliver({ id: 1, data: { ok: true } });
  assert.deepEqual(await first, { ok: true });
  await assert.rejects(second, (e) => e instanceof RealtimeError && e.code === "invalid_payload" && e.field === "$.text");
  await assert.rejects(late, (e) => e.code === "timeout");
  assert.deepEqual(states, ["open"]);
  rt.close();
  assert.equal(rt.state, "closed");
});

test("pushed events reach on() handlers; emit is fire-and-forget and dropped while offline", async () => {
  const rt = connect("ws://x/rt", options);
  assert.equal(rt.emit("typing", {}), false);
  latest().open();
  const got = [];
  const off = rt.on("notice", (d) => got.push(d));
  latest().deliver({ event: "notice", data: 1 });
  off();
  latest().deliver({ event: "notice", data: 2 });
  assert.deepEqual(got, [1]);
  assert.equal(rt.emit("typing", { on: true }), true);
  assert.deepEqual(latest().sent.at(-1), { event: "typing", data: { on: true } });
  rt.close();
});

test("a reconnect rejoins from the last offset; a message seen twice is shown once", async () => {
  FakeSocket.all = [];
  const rt = connect("ws://x/rt", options);
  const states = [];
  rt.onState((s) => states.push(s));
  const seen = [];
  const joined = rt.join("room", { onMessage: (data, meta) => seen.push([data, meta.offset]), history: 5 });
  latest().open();
  assert.deepEqual(latest().sent[0], { event: "$join", data: { channel: "room", presence: false, history: 5 }, id: 1 });
  latest().deliver({ id: 1, data: { channel: "room", recovered: false } });
  assert.deepEqual(await joined, { channel: "room", recovered: false });
  latest().deliver({ event: "$message", data: { channel: "room", data: "a", offset: "1-1" } });
  latest().deliver({ event: "$message", data: { channel: "room", data: "b", offset: "1-2" } });
  const pending = rt.request("say", {});
  latest().drop();
  await assert.rejects(pending, (e) => e.code === "disconnected");
  assert.equal(rt.state, "reconnecting");
  await until(() => FakeSocket.all.length === 2, "a new socket");
  latest().drop(); // the server is still down: try again later
  await until(() => FakeSocket.all.length === 3, "a third socket");
  latest().open();
  const rejoin = latest().sent[0];
  assert.deepEqual(rejoin.data, { channel: "room", presence: false, history: 5, since: "1-2" });
  latest().deliver({ id: rejoin.id, data: { channel: "room", recovered: true } });
  latest().deliver({ event: "$message", data: { channel: "room", data: "b", offset: "1-2" } }); // a repeat
  latest().deliver({ event: "$message", data: { channel: "room", data: "c", offset: "1-3" } });
  assert.deepEqual(seen, [["a", "1-1"], ["b", "1-2"], ["c", "1-3"]]);
  assert.deepEqual(states, ["open", "reconnecting", "open"]);
  rt.close();
});

test("a refused join rejects; presence events and gaps are reported; leave stops messages", async () => {
  const rt = connect("ws://x/rt", options);
  latest().open();
  const refused = rt.join("secret", {});
  latest().deliver({ id: 1, error: { code: "forbidden", message: "no" } });
  await assert.rejects(refused, (e) => e.code === "forbidden");
  const presence = [];
  const gaps = [];
  const got = [];
  const joined = rt.join("room", {
    onPresence: (e) => presence.push(e.member),
    onGap: (j) => gaps.push(j),
    onMessage: (d) => got.push(d),
  });
  assert.equal(latest().sent.at(-1).data.presence, true);
  latest().deliver({ id: 2, data: { channel: "room", recovered: false, members: { ada: null } } });
  assert.deepEqual((await joined).members, { ada: null });
  latest().deliver({ event: "$presence", data: { channel: "room", event: "join", member: "bob" } });
  latest().deliver({ event: "$message", data: { channel: "room", data: 1, offset: "9-1" } });
  const before = FakeSocket.all.length;
  latest().drop();
  await until(() => FakeSocket.all.length === before + 1, "a new socket");
  latest().open();
  const rejoin = latest().sent[0];
  latest().deliver({ id: rejoin.id, data: { channel: "room", recovered: false } });
  await tick();
  assert.equal(gaps.length, 1);
  const leaving = rt.leave("room");
  assert.deepEqual(latest().sent.at(-1).event, "$leave");
  latest().deliver({ id: latest().sent.at(-1).id, data: null });
  await leaving;
  latest().deliver({ event: "$message", data: { channel: "room", data: 2, offset: "9-2" } });
  assert.deepEqual(got, [1]);
  assert.deepEqual(presence, ["bob"]);
  rt.close();
});
