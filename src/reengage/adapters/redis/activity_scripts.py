"""The Lua scripts of the Redis activity store (`activity_store`): each one atomic, so that
any number of API processes and schedulers share the hot state."""

# A Bloom filter of the subjects ever written to the database: fixed size (2^25 bits, 4 MiB),
# four bits per subject from its SHA-1. A subject missing from Redis and from the filter is
# new (no database read); a false positive costs one database read that finds nothing.
KNOWN = """
local function bits(s)
  local hex, out = redis.sha1hex(s), {}
  for i = 0, 3 do out[#out + 1] = tonumber(string.sub(hex, i * 7 + 1, i * 7 + 7), 16) % 33554432 end
  return out
end
local function known(ns, s)
  for _, b in ipairs(bits(s)) do
    if redis.call('GETBIT', ns .. ':known', b) == 0 then return false end
  end
  return true
end
local function remember(ns, s)
  local set = {}
  for _, b in ipairs(bits(s)) do
    set[#set + 1] = 'SET'
    set[#set + 1] = 'u1'
    set[#set + 1] = b
    set[#set + 1] = 1
  end
  redis.call('BITFIELD', ns .. ':known', unpack(set))  -- the four bits in one call
end
"""

RECORD = (
    KNOWN
    + """
local ns, ring, zkey, dkey, chan = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local skey, sval, check, nx = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local first = 10 + nx
-- The caller's view of the organization's configuration must still be current.
if skey ~= '' and (redis.call('GET', skey) or '') ~= sval then return {-1} end
local events = {}
for i = first, #ARGV do events[#events + 1] = cjson.decode(ARGV[i]) end
-- A subject missing here may exist in the database: all of them until every subject of the
-- database is known here again (after a loss), afterwards those the filter of subjects ever
-- written there may hold (expired when quiet). Name them, apply nothing; the caller seeds
-- them and calls again.
if check == '1' then
  local whole = redis.call('EXISTS', ns .. ':complete') == 1
  local function missing(s)
    return redis.call('EXISTS', ns .. ':s:' .. s) == 0 and (not whole or known(ns, s))
  end
  local out = {-2}
  for i = 10, first - 1 do
    if missing(ARGV[i]) then out[#out + 1] = ARGV[i] end
  end
  for _, e in ipairs(events) do
    if missing(e.s) then out[#out + 1] = e.s end
  end
  if #out > 1 then return out end
end
local F = {'la', 'lm', 'li', 'lc', 'lg', 'we', 'pa', 'cl'}
local head = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')[2]
head = head and tonumber(head) or math.huge
local earliest = math.huge
local accepted = 0
for _, e in ipairs(events) do
  local h = ns .. ':s:' .. e.s
  -- One read, one write: the whole clock is merged here.
  local cur = redis.call('HMGET', h, 'ev', 'st', 'gen', 'seq', unpack(F))
  -- The subject's last `ring` event ids, each as 48 bits of its SHA-1 (13 bytes whatever the
  -- id's length): a retry of one of them is dropped.
  local id = string.sub(redis.sha1hex(tostring(e.e)), 1, 12)
  local ids = cur[1] or ''
  if not string.find('\31' .. ids .. '\31', '\31' .. id .. '\31', 1, true) then
    accepted = accepted + 1
    local kept = {id}
    for x in string.gmatch(ids, '[^\31]+') do
      if #kept >= ring then break end
      kept[#kept + 1] = x
    end
    local st, gen, seq = cur[2] or 'bot', tonumber(cur[3] or '0'), tonumber(cur[4] or '0')
    local v = {}
    for j, f in ipairs(F) do v[f] = tonumber(cur[j + 4] or '0') end
    local cleared = false
    if st == 'closed' then
      -- Activity after a close belongs to the next conversation, with fresh clocks.
      gen, st, cleared = gen + 1, 'bot', true
      for _, f in ipairs(F) do if f ~= 'pa' then v[f] = 0 end end
    end
    if type(e.st) == 'string' then
      st, cleared = e.st, true
      if st == 'closed' then v.cl = e.t else v.cl = 0 end
    end
    -- A message older than the last activity moves its clocks, not the silence.
    local fresh = not (e.m == 1 and v.la > 0 and e.t < v.la)
    if fresh then seq = seq + 1 end
    for f, x in pairs(e.f) do if x > v[f] then v[f] = x end end
    local set = {'st', st, 'gen', gen, 'seq', string.format('%d', seq), 'o', e.o, 'th', e.th,
      'ac', e.ac, 'ev', table.concat(kept, '\31')}
    local gone = {}
    for _, f in ipairs(F) do
      if v[f] > 0 then
        set[#set + 1] = f
        set[#set + 1] = string.format('%d', v[f])
      elseif cleared then
        gone[#gone + 1] = f
      end
    end
    redis.call('HSET', h, unpack(set))
    if #gone > 0 then redis.call('HDEL', h, unpack(gone)) end
    redis.call('SADD', ns .. ':dirty', e.s)
    local tk = 'inactivity:' .. e.s
    local wake = 0
    if st ~= 'closed' and e.th > 0 and v.la > 0 then
      wake = v.la + e.th
    elseif st == 'closed' and e.ac > 0 and v.la > 0 then
      wake = math.max(v.la, v.cl) + e.ac
    end
    if not fresh then
      -- the timer of this silence stands
    elseif wake > 0 then
      local due = string.format('%d', wake)
      local payload = cjson.encode({bot_id = e.b, user_id = e.u, seq = seq})
      -- the score's fraction spreads timers due together (redis_store.score)
      local spread = tonumber(string.sub(redis.sha1hex(tk), 1, 4), 16) % 900
      redis.call('ZADD', zkey, due .. string.format('.%03d', spread), tk)
      earliest = math.min(earliest, wake)
      redis.call('HSET', dkey, tk, string.format('%d', seq) .. '|h' .. string.format('%d', seq) ..
        '|0|' .. due .. '|inactivity|' .. payload)
    else
      redis.call('ZREM', zkey, tk)
      redis.call('HDEL', dkey, tk)
    end
  end
end
if earliest < head then redis.call('PUBLISH', chan, string.format('%d', earliest)) end
return {accepted}
"""
)

# Seed one subject from the database, unless it is here already (then it is newer); it is
# clean, so it may expire once quiet.
SEED = (
    KNOWN
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
remember(ARGV[2], ARGV[3])
return 1
"""
)

# After a flush committed: the subjects are no longer in flight; those not dirty again are
# in the database (remembered in the filter) and may expire once quiet.
SETTLE = (
    KNOWN
    + """
local quiet = {}
for i = 3, #ARGV do
  local s = ARGV[i]
  if redis.call('SISMEMBER', KEYS[1], s) == 0 then
    quiet[#quiet + 1] = ARGV[2]
    quiet[#quiet + 1] = s
    -- The filter learns a subject once; its hash keeps that it did ('kn').
    local h = ARGV[1] .. ':s:' .. s
    if redis.call('HEXISTS', h, 'kn') == 0 then
      remember(ARGV[1], s)
      if redis.call('EXISTS', h) == 1 then redis.call('HSET', h, 'kn', 1) end
    end
  end
end
-- Many members per call (a call's arguments stay well under Lua's stack limit).
for i = 3, #ARGV, 1000 do
  redis.call('ZREM', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
for i = 1, #quiet, 2000 do
  redis.call('ZADD', KEYS[3], unpack(quiet, i, math.min(i + 1999, #quiet)))
end
return 0
"""
)

# Quiet subjects leave Redis: not dirty, not in flight, no silence timer pending (it keeps
# its subject until it has fired, and for the quiet time after). The database has them all.
EXPIRE = """
local now, idle, ns = tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[4]
local gone = 0
for _, s in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[2])) do
  local timer = redis.call('HGET', KEYS[4], 'inactivity:' .. s)
  if redis.call('SISMEMBER', KEYS[2], s) == 1 or redis.call('ZSCORE', KEYS[3], s) then
    redis.call('ZREM', KEYS[1], s)  -- its flush brings it back
  elseif timer then
    local due = tonumber(string.match(timer, '^[^|]*|[^|]*|[^|]*|([^|]*)|'))
    redis.call('ZADD', KEYS[1], math.max(due, now) + idle, s)
  else
    redis.call('DEL', ns .. ':s:' .. s)
    redis.call('ZREM', KEYS[1], s)
    gone = gone + 1
  end
end
return gone
"""

# Compare-and-set of the restore's cursor; at the end, the dataset is declared complete.
ADVANCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"""

# A flush's one round trip: subjects taken by a flusher that died before committing (in
# flight since before ARGV[3]) go back to dirty; then up to N dirty subjects move into the
# in-flight set (scored by when), each returned with the values of its fields ARGV[5]...
TAKE = """
local stuck = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
for _, s in ipairs(stuck) do
  redis.call('SADD', KEYS[1], s)
  redis.call('ZREM', KEYS[2], s)
end
local out, flying = {}, {}
local fields = {unpack(ARGV, 5)}
for _, s in ipairs(redis.call('SPOP', KEYS[1], tonumber(ARGV[1]))) do
  flying[#flying + 1] = ARGV[2]
  flying[#flying + 1] = s
  out[#out + 1] = s
  out[#out + 1] = redis.call('HMGET', ARGV[4] .. s, unpack(fields))
end
for i = 1, #flying, 2000 do
  redis.call('ZADD', KEYS[2], unpack(flying, i, math.min(i + 1999, #flying)))
end
return out
"""

# Compare-and-set of a subject's status against its activity version.
CHANGE_STATUS = """
local seq = redis.call('HGET', KEYS[1], 'seq')
if seq and tonumber(seq) ~= tonumber(ARGV[1]) then return 0 end
if not seq then return 1 end
redis.call('HSET', KEYS[1], 'st', ARGV[2])
if ARGV[2] == 'closed' then
  redis.call('HSET', KEYS[1], 'cl', ARGV[3])
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('HDEL', KEYS[3], ARGV[4])
end
return 1
"""
