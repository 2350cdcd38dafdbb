// scallion realtime client: typed events with replies, channels that resume after a reconnect.
// One ES module, no build step, no dependency; served by the endpoint at <path>/client.js.
// Protocol and semantics: docs/realtime.md.
//
//   import { connect } from "/realtime/client.js";
//   const rt = connect("/realtime");
//   rt.onState((state) => console.log(state));          // connecting / open / reconnecting / closed
//   const ack = await rt.request("say", { text: "hi" }, { timeout: 5000 });
//   rt.on("notice", (data) => ...);                      // events the server pushes
//   await rt.join("room:1", { onMessage: (data, meta) => ..., onPresence: (event) => ..., history: 50 });
//   await rt.leave("room:1");

/** @typedef {"connecting" | "open" | "reconnecting" | "closed"} State */

/**
 * @typedef {object} Options
 * @property {number} [minDelay=250] first reconnect delay, in ms
 * @property {number} [maxDelay=5000] longest reconnect delay, in ms
 * @property {number} [factor=2] how much each failed attempt multiplies the delay by
 * @property {number} [jitter=0.5] up to this fraction of each delay is taken off at random
 * @property {number} [timeout=10000] default request timeout, in ms
 * @property {() => number} [random=Math.random] the jitter's source of randomness
 * @property {typeof WebSocket} [WebSocket=globalThis.WebSocket] the WebSocket class (Node < 22: a library's)
 */

/**
 * @typedef {object} JoinOptions
 * @property {(data: any, meta: {channel: string, offset: string | null}) => void} [onMessage] each message, once, in order
 * @property {(event: PresenceEvent) => void} [onPresence] members joining and leaving (asks the server for them)
 * @property {(joined: Joined) => void} [onJoin] every (re)join's reply
 * @property {(joined: Joined) => void} [onGap] a rejoin could not recover every message since the last one seen
 * @property {number} [history=0] on the first join (and after a gap), first receive up to this many recent messages
 */

/** @typedef {{channel: string, event: "join" | "leave", member: string, info?: any}} PresenceEvent */
/** @typedef {{channel: string, recovered: boolean, members?: Record<string, any>}} Joined */

/** An error reply from the server (`code`: invalid_payload, unknown_event, forbidden...), or a local one
 * (`timeout`, `disconnected`, `closed`). */
export class RealtimeError extends Error {
  /** @param {string} code @param {string} message @param {string} [field] */
  constructor(code, message, field) {
    super(message);
    this.name = "RealtimeError";
    /** @type {string} */
    this.code = code;
    /** @type {string | undefined} */
    this.field = field;
  }
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first): exponential, capped, with jitter.
 * @param {number} attempt @param {Required<Pick<Options, "minDelay" | "maxDelay" | "factor" | "jitter" | "random">>} o
 * @returns {number}
 */
export function backoff(attempt, o) {
  const delay = Math.min(o.maxDelay, o.minDelay * Math.pow(o.factor, attempt));
  return delay * (1 - o.jitter * o.random());
}

const SEEN = 1000; // offsets remembered per channel, to drop a message seen twice across a reconnect

/** Resolve a relative URL ("/realtime") against the page, with ws: or wss:. @param {string} url */
function socketURL(url) {
  if (/^wss?:\/\//.test(url) || typeof location === "undefined") return url;
  const absolute = new URL(url, location.href);
  absolute.protocol = absolute.protocol === "https:" ? "wss:" : "ws:";
  return absolute.href;
}

/** A connection to a scallion realtime endpoint that reconnects by itself. */
export class RealtimeClient {
  /** @param {string} url @param {Options} [options] */
  constructor(url, options = {}) {
    this.url = socketURL(url);
    this.options = {
      minDelay: 250, maxDelay: 5000, factor: 2, jitter: 0.5, timeout: 10000, random: Math.random,
      WebSocket: globalThis.WebSocket, ...options,
    };
    /** @type {State} */
    this.state = "connecting";
    /** reconnect attempts since the last open */
    this.attempt = 0;
    /** @type {WebSocket | null} */
    this.socket = null;
    this.nextId = 1;
    /** @type {Map<number, {resolve: (v: any) => void, reject: (e: any) => void, timer: any, sent: boolean}>} */
    this.pending = new Map();
    /** @type {string[]} frames waiting for the socket to open */
    this.outbox = [];
    /** @type {Map<string, Set<(data: any) => void>>} */
    this.handlers = new Map();
    /** @type {Set<(state: State) => void>} */
    this.stateHandlers = new Set();
    /** @type {Set<(error: RealtimeError) => void>} */
    this.errorHandlers = new Set();
    /** @type {Map<string, {options: JoinOptions, lastOffset: string | null, seen: Set<string>, order: string[], joined: boolean, first: {resolve: (j: Joined) => void, reject: (e: any) => void}}>} */
    this.channels = new Map();
    this.timer = null;
    this.open();
  }

  /** @private */
  open() {
    this.setState(this.attempt === 0 && this.socket === null ? "connecting" : "reconnecting");
    const socket = new this.options.WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => this.opened(socket);
    socket.onmessage = (event) => this.received(event.data);
    socket.onclose = () => this.lost(socket);
  }

  /** @private @param {WebSocket} socket */
  opened(socket) {
    if (socket !== this.socket) return;
    this.attempt = 0;
    this.setState("open");
    for (const [channel, record] of this.channels) this.sendJoin(channel, record);
    const frames = this.outbox;
    this.outbox = [];
    for (const frame of frames) socket.send(frame);
    for (const entry of this.pending.values()) entry.sent = true;
  }

  /** @private @param {WebSocket} socket */
  lost(socket) {
    if (socket !== this.socket) return;
    for (const [id, entry] of this.pending) {
      if (entry.sent) { // it may or may not have been handled: the caller decides whether to retry
        this.pending.delete(id);
        clearTimeout(entry.timer);
        entry.reject(new RealtimeError("disconnected", "the connection was lost before the reply"));
      }
    }
    if (this.state === "closed") return;
    this.setState("reconnecting");
    const delay = backoff(this.attempt++, this.options);
    this.timer = setTimeout(() => { this.timer = null; if (this.state !== "closed") this.open(); }, delay);
  }

  /** @private @param {State} state */
  setState(state) {
    if (this.state === state && state !== "connecting") return;
    this.state = state;
    for (const fn of this.stateHandlers) fn(state);
  }

  /** @private @param {string} text */
  received(text) {
    let frame;
    try { frame = JSON.parse(text); } catch { return; }
    if (typeof frame.id === "number") {
      const entry = this.pending.get(frame.id);
      if (!entry) return;
      this.pending.delete(frame.id);
      clearTimeout(entry.timer);
      if (frame.error) entry.reject(new RealtimeError(frame.error.code, frame.error.message, frame.error.field));
      else entry.resolve(frame.data);
      return;
    }
    if (frame.error) {
      const error = new RealtimeError(frame.error.code, frame.error.message, frame.error.field);
      for (const fn of this.errorHandlers) fn(error);
      return;
    }
    if (frame.event === "$message") return this.channelMessage(frame.data);
    if (frame.event === "$presence") {
      const record = this.channels.get(frame.data.channel);
      if (record && record.options.onPresence) record.options.onPresence(frame.data);
      return;
    }
    const handlers = this.handlers.get(frame.event);
    if (handlers) for (const fn of handlers) fn(frame.data);
  }

  /** @private @param {{channel: string, data: any, offset: string | null}} message */
  channelMessage(message) {
    const record = this.channels.get(message.channel);
    if (!record) return;
    const offset = message.offset;
    if (offset !== null && offset !== undefined) {
      if (record.seen.has(offset)) return; // delivered before the reconnect already
      record.seen.add(offset);
      record.order.push(offset);
      if (record.order.length > SEEN) record.seen.delete(/** @type {string} */ (record.order.shift()));
      record.lastOffset = offset;
    }
    if (record.options.onMessage) record.options.onMessage(message.data, { channel: message.channel, offset });
  }

  /** @private */
  frame(event, data, id) {
    const envelope = { event, data: data === undefined ? null : data };
    if (id !== undefined) envelope.id = id;
    return JSON.stringify(envelope);
  }

  /**
   * Send `event` with `data` and wait for the reply (the handler's result). Rejects with a RealtimeError: the
   * server's error reply, `timeout`, `disconnected` (lost after sending) or `closed`. Sent once open.
   * @param {string} event @param {any} [data] @param {{timeout?: number}} [options] @returns {Promise<any>}
   */
  request(event, data, options = {}) {
    if (this.state === "closed") return Promise.reject(new RealtimeError("closed", "the client is closed"));
    const id = this.nextId++;
    const timeout = options.timeout ?? this.options.timeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RealtimeError("timeout", `no reply to ${event} within ${timeout} ms`));
      }, timeout);
      const open = this.state === "open";
      this.pending.set(id, { resolve, reject, timer, sent: open });
      const frame = this.frame(event, data, id);
      if (open) this.socket.send(frame);
      else this.outbox.push(frame);
    });
  }

  /** Send `event` without waiting for a reply; dropped (false) when not connected. @param {string} event @param {any} [data] */
  emit(event, data) {
    if (this.state !== "open") return false;
    this.socket.send(this.frame(event, data));
    return true;
  }

  /** Call `fn(data)` for each `event` the server pushes; returns a function that stops it. @param {string} event @param {(data: any) => void} fn */
  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(fn);
    return () => this.handlers.get(event)?.delete(fn);
  }

  /** Call `fn(state)` on each state change (connecting, open, reconnecting, closed). @param {(state: State) => void} fn */
  onState(fn) {
    this.stateHandlers.add(fn);
    return () => this.stateHandlers.delete(fn);
  }

  /** Call `fn(error)` for error replies to messages sent without an id (emit). @param {(error: RealtimeError) => void} fn */
  onError(fn) {
    this.errorHandlers.add(fn);
    return () => this.errorHandlers.delete(fn);
  }

  /**
   * Join `channel`: resolves with the server's reply once it listens. After every reconnect it joins again from
   * the last offset seen, so each message reaches `onMessage` exactly once, in order.
   * @param {string} channel @param {JoinOptions} [options] @returns {Promise<Joined>}
   */
  join(channel, options = {}) {
    return new Promise((resolve, reject) => {
      const record = { options, lastOffset: null, seen: new Set(), order: [], joined: false, first: { resolve, reject } };
      this.channels.set(channel, record);
      if (this.state === "open") this.sendJoin(channel, record); // else when it opens
    });
  }

  /** @private */
  sendJoin(channel, record) {
    const o = record.options;
    const data = { channel, presence: Boolean(o.onPresence), history: o.history || 0 };
    if (record.lastOffset !== null) data.since = record.lastOffset;
    this.request("$join", data).then((joined) => {
      if (this.channels.get(channel) !== record) return;
      if (data.since !== undefined && !joined.recovered && o.onGap) o.onGap(joined);
      if (o.onJoin) o.onJoin(joined);
      if (!record.joined) {
        record.joined = true;
        record.first.resolve(joined);
      }
    }, (error) => {
      if (error.code === "disconnected") return; // the rejoin after reconnecting answers
      if (this.channels.get(channel) === record && !record.joined) {
        this.channels.delete(channel);
        record.first.reject(error);
      }
    });
  }

  /** Leave `channel`. @param {string} channel @returns {Promise<void>} */
  async leave(channel) {
    if (!this.channels.delete(channel)) return;
    if (this.state === "open") await this.request("$leave", { channel });
  }

  /** Close for good (no reconnect); pending requests are rejected with `closed`. */
  close() {
    this.setState("closed");
    if (this.timer !== null) clearTimeout(this.timer);
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(new RealtimeError("closed", "the client is closed"));
    }
    this.pending.clear();
    if (this.socket) this.socket.close(1000);
  }
}

/** Connect to the realtime endpoint at `url` ("/realtime", "wss://host/realtime"). @param {string} url @param {Options} [options] */
export function connect(url, options) {
  return new RealtimeClient(url, options);
}
