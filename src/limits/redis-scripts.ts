import { createHash } from 'node:crypto';

/** A Lua script and its SHA-1, for EVALSHA with an EVAL fallback after a Redis restart. */
export interface RedisScript {
  readonly lua: string;
  readonly sha: string;
}

function script(lua: string): RedisScript {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/**
 * Checks every limit and, only if all allow, counts the request: one script, so it is atomic across
 * all replicas sharing the Redis. The rules mirror limit-store.ts (slidingState, dailyState,
 * streamsState) operation for operation.
 *
 * An admission also leaves a short-lived marker, so that an admission whose reply timed out (and
 * that may still run once a stalled Redis wakes up) can be undone exactly: see SETTLE.
 *
 * KEYS: rpm prev, rpm cur, tpm prev, tpm cur, day, streams, admission marker, usd day, usd month
 * ARGV: now, window ms, rpm, tpm, daily, streams, tpm cost, daily cost, lease id, lease ttl,
 *       window key ttl, day key ttl, ms until UTC midnight, stream retry ms, marker ttl,
 *       usd daily, usd monthly (nano-dollars), usd day cost, usd month cost, ms until next month,
 *       month key ttl
 * Returns: { allowed (1|0), then per enabled limit: code (1 rpm, 2 tpm, 3 daily, 4 streams,
 *            5 usd_daily, 6 usd_monthly), limit, remaining, reset ms, retry-after ms }
 *
 * Nano-dollar amounts stay below 2^53 (exact as Lua numbers); they are written back with
 * string.format('%d'), since Lua would print a large number in exponent form.
 */
export const ADMIT = script(`
local now, W = tonumber(ARGV[1]), tonumber(ARGV[2])
local rpm, tpm, daily, streams = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local tpmCost, dailyCost = tonumber(ARGV[7]), tonumber(ARGV[8])
local elapsed = now - math.floor(now / W) * W
local out, allowed = {0}, true

local function num(key) return tonumber(redis.call('GET', key) or '0') end
local function push(code, limit, remaining, reset, retry)
  if retry > 0 then allowed = false end
  for _, v in ipairs({code, limit, remaining, reset, retry}) do out[#out + 1] = v end
end
local function sliding(code, limit, prev, cur, cost)
  local estimate = (prev * (W - elapsed)) / W + cur
  local ok = estimate + cost <= limit
  local remaining
  if ok then remaining = limit - estimate - cost else remaining = limit - estimate end
  remaining = math.max(0, math.floor(remaining))
  local retry = 0
  if not ok then
    if cur + cost <= limit then
      retry = math.ceil((W * (prev + cur + cost - limit)) / prev) - elapsed
    else
      retry = W - elapsed + math.ceil((W * (cur + cost - limit)) / cur)
    end
    retry = math.max(1, retry)
  end
  push(code, limit, remaining, W - elapsed, retry)
end

if rpm > 0 then sliding(1, rpm, num(KEYS[1]), num(KEYS[2]), 1) end
if tpm > 0 then sliding(2, tpm, num(KEYS[3]), num(KEYS[4]), tpmCost) end
if daily > 0 then
  local used, untilMidnight = num(KEYS[5]), tonumber(ARGV[13])
  if used + dailyCost <= daily then push(3, daily, math.max(0, daily - used - dailyCost), untilMidnight, 0)
  else push(3, daily, math.max(0, daily - used), untilMidnight, untilMidnight) end
end
if streams > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
  local open, retry = redis.call('ZCARD', KEYS[6]), tonumber(ARGV[14])
  if open < streams then push(4, streams, math.max(0, streams - open - 1), retry, 0)
  else push(4, streams, math.max(0, streams - open), retry, retry) end
end
local usdDaily, usdMonthly = tonumber(ARGV[16]), tonumber(ARGV[17])
local usdDayCost, usdMonthCost = tonumber(ARGV[18]), tonumber(ARGV[19])
local function budget(code, limit, used, cost, untilReset)
  if used + cost <= limit then push(code, limit, math.max(0, limit - used - cost), untilReset, 0)
  else push(code, limit, math.max(0, limit - used), untilReset, untilReset) end
end
if usdDaily > 0 then budget(5, usdDaily, num(KEYS[8]), usdDayCost, tonumber(ARGV[13])) end
if usdMonthly > 0 then budget(6, usdMonthly, num(KEYS[9]), usdMonthCost, tonumber(ARGV[20])) end
if not allowed then return out end

local windowTtl, dayTtl = ARGV[11], ARGV[12]
if usdDayCost > 0 then
  redis.call('INCRBY', KEYS[8], string.format('%d', usdDayCost)); redis.call('PEXPIRE', KEYS[8], dayTtl)
end
if usdMonthCost > 0 then
  redis.call('INCRBY', KEYS[9], string.format('%d', usdMonthCost)); redis.call('PEXPIRE', KEYS[9], ARGV[21])
end
if rpm > 0 then redis.call('INCR', KEYS[2]); redis.call('PEXPIRE', KEYS[2], windowTtl) end
if tpmCost > 0 then redis.call('INCRBY', KEYS[4], tpmCost); redis.call('PEXPIRE', KEYS[4], windowTtl) end
if dailyCost > 0 then redis.call('INCRBY', KEYS[5], dailyCost); redis.call('PEXPIRE', KEYS[5], dayTtl) end
if streams > 0 then
  redis.call('ZADD', KEYS[6], now + tonumber(ARGV[10]), ARGV[9])
  redis.call('PEXPIRE', KEYS[6], ARGV[10])
end
redis.call('SET', KEYS[7], '1', 'PX', ARGV[15])
out[1] = 1
return out
`);

/**
 * Settles a reservation from real usage: more tokens than reserved are counted in the current
 * window and day; fewer give the unused part back to the reservation's window and day (never below
 * zero, nothing if that counter has expired). Also frees the stream lease and can refund the request.
 * Undoing a timed-out admission is a conditional settle (refund, all tokens back) that does
 * nothing unless the admission's marker exists, i.e. unless that admission really counted; sent on
 * the same connection right after it, it runs right after it too.
 *
 * KEYS: rpm reserved, tpm reserved, tpm current, day reserved, day current, streams, admission marker,
 *       usd day reserved, usd day current, usd month reserved, usd month current
 * ARGV: refund request (1|0), tpm delta, window key ttl, daily delta, day key ttl, lease id or '',
 *       only if the marker exists (1|0), usd day delta, usd month delta, month key ttl
 */
export const SETTLE = script(`
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[7]) == 0 then return 0 end
redis.call('DEL', KEYS[7])
local function lower(key, amount)
  local value = tonumber(redis.call('GET', key) or '0')
  local by = math.min(value, amount)
  if by > 0 then redis.call('DECRBY', key, string.format('%d', by)) end
end
local function adjust(reserved, current, delta, ttl)
  if delta > 0 then
    redis.call('INCRBY', current, string.format('%d', delta))
    redis.call('PEXPIRE', current, ttl)
  elseif delta < 0 then
    lower(reserved, -delta)
  end
end
if ARGV[1] == '1' then lower(KEYS[1], 1) end
adjust(KEYS[2], KEYS[3], tonumber(ARGV[2]), ARGV[3])
adjust(KEYS[4], KEYS[5], tonumber(ARGV[4]), ARGV[5])
adjust(KEYS[8], KEYS[9], tonumber(ARGV[8]), ARGV[5])
adjust(KEYS[10], KEYS[11], tonumber(ARGV[9]), ARGV[10])
if ARGV[6] ~= '' then redis.call('ZREM', KEYS[6], ARGV[6]) end
return 1
`);

/** KEYS: streams. ARGV: lease id, new expiry, lease ttl. Renews a lease that is still held. */
export const RENEW = script(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
`);
