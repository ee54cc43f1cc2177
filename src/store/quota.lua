-- Headroom's shared quota: the tracker of src/quota/tracker.rs, run atomically inside Redis
-- so that every replica decides on one state, with Redis's own clock. Times are integer
-- milliseconds since the epoch (Redis TIME), durations integer milliseconds. One tracker is
-- one hash (its learned window, pause and inference) and one sorted set (reservations in
-- flight, scored by the instant they expire: a replica that dies gives its units back).
--
-- This file is the common part; a `-- reserve` or `-- settle` body is appended by
-- src/store/redis.rs. Every field name below mirrors a field of `Tracker`.

local HORIZON = 366 * 24 * 3600 * 1000
local STALE_SLACK = 1000
local SILENT_PROBE_SUCCESSES = 200
local UNKNOWN_RESET_POLL = 1000
-- An idle tracker's state is forgotten after two days (the longest reset any header may
-- announce), so partition keys that stop coming do not fill Redis.
local KEEP = 2 * 24 * 3600 * 1000

local FIELDS = { 'lim', 'rem', 'rst', 'win', 'wann', 'src', 'newest', 'rolled', 'rb', 'pat',
    'prb', 'exr', 'grs', 'rann', 'rbo', 'longest', 'pause', 'lvl', 'lat', 'uncf', 'rtt', 'spk',
    'iws', 'ib', 'isu' }

local function num(v)
    if v == nil then return nil end
    local n = tonumber(v)
    if n == nil or n < 0 then return nil end
    return n
end

-- An optional duration argument: -1 (or anything negative) is "not announced".
local function opt(v)
    local n = tonumber(v)
    if n == nil or n < 0 then return nil end
    return math.min(n, HORIZON)
end

local function clock(override)
    local o = tonumber(override) or 0
    if o > 0 then return o end
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function load(key)
    local raw = redis.call('HGETALL', key)
    local s = {}
    for i = 1, #raw, 2 do
        if raw[i] == 'src' then s.src = raw[i + 1] else s[raw[i]] = tonumber(raw[i + 1]) end
    end
    s.spk = s.spk or 0
    s.isu = s.isu or 0
    s.lvl = s.lvl or 0
    s.longest = s.longest or 0
    return s
end

local function save(key, s)
    redis.call('DEL', key)
    local args = {}
    for _, f in ipairs(FIELDS) do
        local v = s[f]
        if v ~= nil then
            args[#args + 1] = f
            if f == 'src' then args[#args + 1] = v else args[#args + 1] = string.format('%.0f', v) end
        end
    end
    if #args > 0 then
        redis.call('HSET', key, unpack(args))
        redis.call('PEXPIRE', key, KEEP)
    end
end

-- Reservations in flight on a tracker: expired ones (their replica died) are dropped first.
local function in_flight(fkey, now)
    redis.call('ZREMRANGEBYSCORE', fkey, '-inf', now)
    return redis.call('ZCARD', fkey)
end

local function slack(s)
    if s.win then return math.min(math.floor(s.win / 2), STALE_SLACK) end
    return STALE_SLACK
end

-- Tracker::roll
local function roll(s, now)
    if not s.rst or now < s.rst then return end
    local reset = s.rst
    s.rolled = reset
    local predict = s.rbo ~= 1
    s.rbo = 0
    s.rb = predict and 1 or 0
    local nxt = nil
    if s.win and s.win > 0 and predict then
        local into = (now - reset) % s.win
        nxt = now + (s.win - into)
    end
    if s.spk == 2 then
        s.rem = 0
        s.rst = nil
        s.pat = reset
        s.exr = nxt
        local announced = s.rann == 1
        s.rann = 0
        if announced then s.grs = nil else s.grs = reset end
        s.iws = reset
        s.ib = announced and 1 or 0
        s.isu = 0
    else
        if s.lim then s.rem = math.max(s.lim, 1) else s.rem = nil end
        s.rst = nxt
        if s.lim then
            local start = reset
            if nxt and s.win and nxt >= s.win then start = nxt - s.win end
            s.uncf = math.max(start, reset)
        end
    end
end

-- Tracker::first_wave_wait: returns kind (1 until, 2 response) and instant, or nil.
local function first_wave(s, now, inflight)
    if not s.uncf or not s.lim then return nil end
    local slow = s.rtt ~= nil and s.rtt * 2 >= (s.win or UNKNOWN_RESET_POLL * 2)
    local half = nil
    if s.win then half = s.uncf + math.floor(s.win / 2) end
    if slow or (half and now >= half) then
        s.uncf = nil
        return nil
    end
    local used = math.max(s.lim - (s.rem or 0), 0) + inflight
    if used < math.max(math.ceil(s.lim / 2), 1) or inflight == 0 then return nil end
    if half then return 1, half end
    return 2, 0
end

-- Tracker::check: nil when one more may go, else kind (1 until, 2 response) and instant.
local function check(s, now, inflight, probes, max_delay)
    if s.pause then
        if now < s.pause then return 1, s.pause end
        s.pause = nil
    end
    roll(s, now)
    local k, u = first_wave(s, now, inflight)
    if k then return k, u end
    if s.rem ~= nil then
        if s.rem > inflight then return nil end
        if s.rst then return 1, s.rst end
        if inflight > 0 then return 2, 0 end
        local poll = UNKNOWN_RESET_POLL
        if s.win then poll = math.floor(s.win / math.max(s.lim or 1, 1)) end
        poll = math.min(poll, math.max(max_delay, UNKNOWN_RESET_POLL))
        if not s.pat then
            if s.exr then
                s.pat = s.exr
                s.exr = nil
            else
                s.pat = now + poll
            end
        end
        if now < s.pat then return 1, s.pat end
        s.pat = nil
        s.prb = 1
        return nil
    end
    if s.spk == 0 and inflight >= probes then return 2, 0 end
    if s.spk == 2 and not s.lim and s.isu < SILENT_PROBE_SUCCESSES and inflight >= 1 then
        return 2, 0
    end
    return nil
end

-- Tracker::is_stale
local function is_stale(s, obs, now)
    if obs.reset_after == nil then return false end
    local reset = now + obs.reset_after
    local sl = slack(s)
    return (s.rolled ~= nil and reset < s.rolled + sl) or (s.rst ~= nil and reset + sl < s.rst)
end

-- Tracker::apply (leaky buckets are taken as plain windows: see README, replicas)
local function apply(s, obs, now)
    s.src = obs.src
    if obs.limit then s.lim = obs.limit end
    if obs.window then
        s.win = obs.window
        s.wann = 1
    end
    if obs.reset_after then s.longest = math.max(s.longest, obs.reset_after) end
    local observed = nil
    if obs.reset_after then observed = now + obs.reset_after end
    local same = observed ~= nil and s.rst ~= nil and observed <= s.rst + slack(s)
    if not same and s.wann ~= 1 and s.rb == 1 and observed and s.rolled then
        local distance = math.max(observed - s.rolled, 0)
        local plausible = distance <= s.longest + STALE_SLACK
        if distance >= slack(s) and plausible then
            if s.win then s.win = math.min(s.win, distance) else s.win = distance end
        end
    end
    if same then
        if obs.remaining then
            if s.rem then s.rem = math.min(s.rem, obs.remaining) else s.rem = obs.remaining end
        end
        if observed and s.rst then
            s.rst = math.min(s.rst, observed)
            s.rbo = 0
        end
    else
        if obs.remaining then s.rem = obs.remaining end
        if observed then
            s.rst = observed
            s.rbo = 0
        end
    end
end

-- Tracker::infer
local function infer(s, now, wait, max_delay)
    local e = now + math.min(wait, max_delay)
    local guessed = s.grs
    s.grs = nil
    if wait <= max_delay then
        local counted = s.isu
        local start = nil
        if s.ib == 1 then start = s.iws end
        if start and counted > 0 then
            local w = math.max(e - start, 0)
            if w > 0 then s.win = w end
        elseif start == nil and guessed then
            if s.win then s.win = s.win + math.max(e - guessed, 0) end
        end
        if counted > 0 then
            s.lim = counted
            s.src = 'inferred'
        end
    end
    s.rst = e
    s.rann = 1
    s.iws = e
    s.ib = 1
    s.isu = 0
end

-- backoff::full_jitter
local function full_jitter(n, base, max_delay, unit)
    local ceiling = math.min(base * math.pow(2, math.min(n, 31)), max_delay)
    return math.floor(ceiling * math.max(math.min(unit, 1), 0))
end

-- Tracker::observe (the reservation was already taken out of its set). Returns the pause end.
local function observe(s, sent, now, limited, success, obs, base, max_delay, unit)
    s.rtt = math.max(now - sent, 0)
    if obs.has_quota then
        s.spk = 1
        local in_order = obs.reset_after ~= nil or s.newest == nil or sent >= s.newest
        if in_order and not is_stale(s, obs, now) then
            apply(s, obs, now)
            s.newest = sent
            s.uncf = nil
        end
    else
        if s.spk == 0 then s.spk = 2 end
        if not limited then
            if s.prb == 1 then
                s.prb = 0
                if s.lim then s.rem = math.max(s.lim - 1, 0) else s.rem = nil end
                s.grs = nil
                if s.isu > 0 then
                    s.iws = sent
                    s.ib = 0
                    s.isu = 0
                end
            elseif s.rem then
                s.rem = math.max(s.rem - 1, 0)
            end
        end
    end
    if not limited then
        s.lvl = 0
        if success then s.isu = s.isu + 1 end
        return nil
    end
    if s.lat == nil or sent >= s.lat or s.lvl == 0 then
        s.lvl = s.lvl + 1
        s.lat = now
    end
    s.prb = 0
    s.pat = nil
    s.exr = nil
    local announced = obs.retry_after
    if announced == nil and (obs.remaining == 0 or obs.bucket) then announced = obs.reset_after end
    if not obs.has_quota and announced then infer(s, now, announced, max_delay) end
    local wait
    if announced then
        wait = math.min(announced, max_delay)
    else
        wait = full_jitter(s.lvl - 1, base, max_delay, unit)
    end
    s.rem = 0
    local untl = now + wait
    if s.pause then s.pause = math.max(s.pause, untl) else s.pause = untl end
    if (s.rst == nil or s.rst < untl) and announced == nil then
        s.rst = untl
        s.rbo = 1
    end
    return s.pause
end

-- Tracker::spend (the reservation was already taken out of its set).
local function spend(s, sent)
    local this_window = s.rolled == nil or sent >= s.rolled
    if not this_window then return end
    if s.rem then s.rem = math.max(s.rem - 1, 0) end
end

-- What the admin API shows: limit, remaining (minus in flight), reset, pause, source.
local function view(s, now, inflight)
    local rem = -1
    if s.rem then rem = math.max(s.rem - inflight, 0) end
    local reset = -1
    if s.pause and s.pause > now then
        reset = s.pause - now
    elseif s.rst and s.rst > now then
        reset = s.rst - now
    end
    return { s.lim or -1, rem, reset, s.src or '', inflight }
end
