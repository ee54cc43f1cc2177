-- reserve: takes up to ARGV[5] units of the tracker KEYS[1] (in flight: KEYS[2]) and of the
-- static ceiling KEYS[3] (a GCRA in microseconds, when ARGV[8] > 0).
-- ARGV: now override (0: Redis TIME), probes, base delay, max delay, units wanted,
-- reservation id prefix, reservation TTL, static emission interval (us), static burst.
-- Returns: granted, wait kind (0 none, 1 until, 2 a response), wait until, now, then the view.
local now = clock(ARGV[1])
local probes = tonumber(ARGV[2])
local max_delay = tonumber(ARGV[4])
local wanted = tonumber(ARGV[5])
local prefix = ARGV[6]
local ttl = tonumber(ARGV[7])
local interval = tonumber(ARGV[8])
local burst = tonumber(ARGV[9])
local s = load(KEYS[1])
local inflight = in_flight(KEYS[2], now)
local granted, kind, untl = 0, 0, 0
local tat = 0
if interval > 0 then tat = tonumber(redis.call('GET', KEYS[3]) or '0') or 0 end
while granted < wanted do
    local k, u = check(s, now, inflight, probes, max_delay)
    if k then
        kind = k
        untl = u
        -- Held back by reservations in flight: look again when the first of them would
        -- expire (its replica may have died), if that comes first.
        if k == 1 and inflight > 0 then
            local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
            if first[2] then untl = math.min(untl, tonumber(first[2])) end
        end
        break
    end
    if interval > 0 then
        local now_us = now * 1000
        local t = math.max(tat, now_us)
        local tolerance = interval * math.max(burst - 1, 0)
        if t - now_us > tolerance then
            kind = 1
            untl = math.ceil((t - tolerance) / 1000)
            break
        end
        tat = t + interval
    end
    granted = granted + 1
    inflight = inflight + 1
    redis.call('ZADD', KEYS[2], now + ttl, prefix .. ':' .. granted)
    if s.iws == nil then s.iws = now end
end
if interval > 0 and granted > 0 then
    local keep = math.ceil(tat / 1000 - now) + 1000
    redis.call('SET', KEYS[3], string.format('%.0f', tat), 'PX', keep)
end
if granted > 0 then redis.call('PEXPIRE', KEYS[2], KEEP) end
save(KEYS[1], s)
local v = view(s, now, inflight)
return { granted, kind, untl, now, v[1], v[2], v[3], v[4], v[5] }
