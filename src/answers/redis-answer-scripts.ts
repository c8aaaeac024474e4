import { createHash } from 'node:crypto';

/** A Lua script and its SHA-1, for EVALSHA with an EVAL fallback after a Redis restart. */
export interface AnswerScript {
  readonly lua: string;
  readonly sha: string;
}

/**
 * Every script works on one answer's five keys, which share the `{id}` hash tag (one Redis Cluster
 * slot): KEYS[1] the hash (status, model, owner, `seq` = last event, ending, `cancel`, the lost
 * event), KEYS[2] the stream of events (entry id `0-{seq}`, fields `e` event, `d` data, `x` on the
 * last event of the answer), KEYS[3] the text so far, KEYS[4] the producer's heartbeat (a key that
 * expires), KEYS[5] the followers (a sorted set: member → until when it counts, in ms).
 */
const PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Every key but the heartbeat lives ttl more ms.
local function keep(ttl)
  for k = 1, 5 do
    if k ~= 4 then redis.call('PEXPIRE', KEYS[k], ttl) end
  end
end
-- Appends the events given from ARGV index 'from' as: the first event's seq, the text they add, then
-- (event, data) pairs; 'last' marks the final one as the end. Refuses (keeping nothing) unless they
-- go on from the last kept event: no gap or overlap is ever stored, even after a lost reply.
local function add(from, last)
  local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
  local first = tonumber(ARGV[from])
  if first ~= seq + 1 then
    return redis.error_reply('ERR answer event ' .. ARGV[from] .. ' does not follow event ' .. seq)
  end
  for i = from + 2, #ARGV, 2 do
    seq = seq + 1
    if last and i + 2 > #ARGV then
      redis.call('XADD', KEYS[2], '0-' .. seq, 'e', ARGV[i], 'd', ARGV[i + 1], 'x', '1')
    else
      redis.call('XADD', KEYS[2], '0-' .. seq, 'e', ARGV[i], 'd', ARGV[i + 1])
    end
  end
  if ARGV[from + 1] ~= '' then redis.call('APPEND', KEYS[3], ARGV[from + 1]) end
  redis.call('HSET', KEYS[1], 'seq', seq)
  return false
end
-- An answer whose producer fell silent (no heartbeat key) ends failed, with its lost event.
local function check_lost(ttl)
  if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress' or redis.call('EXISTS', KEYS[4]) == 1 then
    return
  end
  local seq = tonumber(redis.call('HGET', KEYS[1], 'seq')) + 1
  redis.call('XADD', KEYS[2], '0-' .. seq, 'e', 'error', 'd', redis.call('HGET', KEYS[1], 'lost'), 'x', '1')
  redis.call('HSET', KEYS[1], 'status', 'failed', 'seq', seq, 'error', redis.call('HGET', KEYS[1], 'lost_error'))
  keep(ttl)
end
`;

function script(body: string): AnswerScript {
  const lua = PRELUDE + body;
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/**
 * ARGV: in-progress ttl, heartbeat ttl, has owner (1|0), owner, model, request id, lost event data,
 * lost error JSON. Returns 1, or 0 when the id exists.
 */
export const CREATE = script(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'in_progress', 'model', ARGV[5], 'seq', 0, 'request_id', ARGV[6],
  'lost', ARGV[7], 'lost_error', ARGV[8], 'stop_reason', 'null', 'usage', 'null', 'error', 'null')
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'owner', ARGV[4]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[2])
return 1
`);

/**
 * ARGV: in-progress ttl, heartbeat ttl, first seq, text, then (event, data) pairs.
 * Returns { 1, cancel flag } when kept, { 0, status } when the answer is no longer in progress.
 */
export const APPEND = script(`
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'in_progress' then return { 0, status or '' } end
local failed = add(3, false)
if failed then return failed end
keep(ARGV[1])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[2])
return { 1, redis.call('HGET', KEYS[1], 'cancel') or '' }
`);

/**
 * ARGV: ttl after the end, status, stop reason JSON, usage JSON, error JSON, model ('' = unchanged),
 * then the last events as first seq, text, (event, data) pairs. Returns 1, or 0 when it had already ended.
 */
export const FINISH = script(`
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress' then return 0 end
local failed = add(7, true)
if failed then return failed end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'stop_reason', ARGV[3], 'usage', ARGV[4], 'error', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'model', ARGV[6]) end
keep(ARGV[1])
redis.call('DEL', KEYS[4])
return 1
`);

/** ARGV: in-progress ttl, heartbeat ttl. Returns { status, cancel flag }. */
export const HEARTBEAT = script(`
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'in_progress' then
  keep(ARGV[1])
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[2])
end
return { status or '', redis.call('HGET', KEYS[1], 'cancel') or '' }
`);

/** ARGV: channel, id. Flags an answer in progress as cancelled and tells its producer. Returns 0 when unknown. */
export const CANCEL = script(`
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
if status == 'in_progress' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return 1
`);

/**
 * The snapshot, after ending an answer whose producer was lost. ARGV: ttl after the end.
 * Returns {} when unknown, else { hash as a flat list, text }.
 */
export const SNAPSHOT = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
check_lost(ARGV[1])
return { redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[3]) or '' }
`);

/**
 * The events after a seq, up to a count, after ending an answer whose producer was lost; counts the
 * follower. ARGV: after, count, ttl after the end, follower member, ms the follower counts for.
 * Returns {} when unknown, else { status, entries, seq of the last event }.
 */
export const READ = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
check_lost(ARGV[3])
redis.call('ZADD', KEYS[5], now_ms() + tonumber(ARGV[5]), ARGV[4])
redis.call('PEXPIRE', KEYS[5], math.max(redis.call('PTTL', KEYS[1]), 1))
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[1], '+', 'COUNT', ARGV[2])
return { redis.call('HGET', KEYS[1], 'status'), entries, tonumber(redis.call('HGET', KEYS[1], 'seq')) }
`);

/** The followers counted now, on every replica (expired members dropped). */
export const FOLLOWERS = script(`
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now_ms())
return redis.call('ZCARD', KEYS[5])
`);
