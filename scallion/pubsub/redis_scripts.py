"""The Lua scripts of :class:`~scallion.pubsub.RedisBroker` and the keys they touch.

Every key of a channel starts with ``scallion:{<channel>}``, so on Redis Cluster all of them hash to one slot
(the ``{...}`` hash tag) and each script touches one slot. Per channel:

* ``scallion:{c}:h``, a stream: the history. Entry IDs are the offsets; one field ``d`` holds the payload.
* ``scallion:{c}:e``, a sorted set of ``<worker>\\0<member>`` scored by expiry (ms): who is present through
  which worker process, until when (each worker's heartbeat pushes its scores forward).
* ``scallion:{c}:n``, a hash member -> how many workers it is present through; ``scallion:{c}:i``, a hash
  member -> its info (JSON, from the join that made it present).

What goes through pub/sub on the channel's own name, one frame per publish: ``\\x1e<offset>\\x1e<payload>``
(the offset is empty without history), or ``\\x1f<json [event, member, info]>`` for presence. A payload
published by something else (``redis-cli PUBLISH``) arrives as it is, without an offset.

Scripts run atomically, so a message is in the stream before anyone sees it live, and live messages of a
channel come in offset order (Redis runs one script at a time).
"""

from __future__ import annotations

MESSAGE = b"\x1e"
"""Starts a published message's frame."""
PRESENCE = b"\x1f"
"""Starts a presence event's frame."""


def key(channel: str, kind: str) -> str:
    """The key of ``channel`` for ``kind`` (``h``: history, ``e``/``n``/``i``: presence)."""
    return f"scallion:{{{channel}}}:{kind}"


# KEYS: history. ARGV: channel, payload, size, age in ms (0: none). Returns the offset.
PUBLISH = """
local key, channel, data, age = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[4])
local id = redis.call('XADD', key, 'MAXLEN', ARGV[3], '*', 'd', data)
if age > 0 then
  local ms = tonumber(string.match(id, '^(%d+)'))
  redis.call('XTRIM', key, 'MINID', string.format('%.0f', ms - age))
  redis.call('PEXPIRE', key, string.format('%.0f', age))
end
redis.call('PUBLISH', channel, '\\30' .. id .. '\\30' .. data)
return id
"""

# KEYS: history. ARGV: age in ms (0: none), mode, since, limit (-1: none).
# mode "recover": false unless the entry `since` is held, else the entries after it;
# "after": the first `limit` entries after `since`; "newest": the newest `limit`, newest first; "all".
READ = """
local key, age, mode, since, limit = KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
if age > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XTRIM', key, 'MINID', string.format('%.0f', now - age))
end
if mode == 'recover' then
  if #redis.call('XRANGE', key, since, since) == 0 then return false end
  return redis.call('XRANGE', key, '(' .. since, '+')
elseif mode == 'after' then
  if limit >= 0 then return redis.call('XRANGE', key, '(' .. since, '+', 'COUNT', limit) end
  return redis.call('XRANGE', key, '(' .. since, '+')
elseif mode == 'newest' then
  return redis.call('XREVRANGE', key, '+', '-', 'COUNT', limit)
end
return redis.call('XRANGE', key, '-', '+')
"""

# KEYS: expiry zset, worker-count hash, info hash. ARGV: op, channel, worker, ttl ms, then member, info pairs.
# op "join": present through this worker (a member new to the channel is announced); "beat": the same, keeping
# the info of members already present (the heartbeat, which also rejoins members expired meanwhile); "leave":
# not through this worker any more; "members": the info hash. Every op first sweeps the expired entries
# (a worker that stopped beating), announcing each member that has no worker left.
PRESENCE_OP = """
local E, N, I = KEYS[1], KEYS[2], KEYS[3]
local op, channel, worker, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function announce(event, member, info)
  redis.call('PUBLISH', channel, '\\31' .. cjson.encode({event, member, info or 'null'}))
end
local function gone(member)
  if redis.call('HINCRBY', N, member, -1) <= 0 then
    local info = redis.call('HGET', I, member)
    redis.call('HDEL', N, member)
    redis.call('HDEL', I, member)
    announce('leave', member, info)
  end
end
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', E, '-inf', now)) do
  redis.call('ZREM', E, entry)
  gone(string.sub(entry, string.find(entry, '\\0', 1, true) + 1))
end
if op == 'members' then return redis.call('HGETALL', I) end
for i = 5, #ARGV, 2 do
  local member, info = ARGV[i], ARGV[i + 1]
  local entry = worker .. '\\0' .. member
  if op == 'leave' then
    if redis.call('ZREM', E, entry) == 1 then gone(member) end
  else
    local added = redis.call('ZADD', E, string.format('%.0f', now + ttl), entry)
    if added == 1 then
      redis.call('HSETNX', I, member, info)
      if redis.call('HINCRBY', N, member, 1) == 1 then announce('join', member, redis.call('HGET', I, member)) end
    end
  end
end
if op ~= 'leave' then
  for _, k in ipairs({E, N, I}) do redis.call('PEXPIRE', k, string.format('%.0f', 2 * ttl)) end
end
return 0
"""
