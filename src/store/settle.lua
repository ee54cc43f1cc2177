-- settle: applies a batch of reservation outcomes. KEYS: the trackers' hashes and sets the
-- ops name by index. ARGV: now override, base delay, max delay, wake channel, upstream name
-- (the wake message), then 18 fields
-- per op: kind (o answered, s spent, r released, p pause), state key, reserved set, target
-- set, reservation id, sent ago, received ago, limited, success, has quota, limit, remaining,
-- reset after, window, retry after, bucket, source, jitter unit (-1: not announced).
-- Returns the end of the pause each op caused (-1: none), and now.
local now = clock(ARGV[1])
local base = tonumber(ARGV[2])
local max_delay = tonumber(ARGV[3])
local channel = ARGV[4]
local out = {}
local i = 6
while i + 17 <= #ARGV do
    local kind = ARGV[i]
    local hkey = KEYS[tonumber(ARGV[i + 1])]
    local fkey = KEYS[tonumber(ARGV[i + 2])]
    local tkey = KEYS[tonumber(ARGV[i + 3])]
    local id = ARGV[i + 4]
    local sent = now - (opt(ARGV[i + 5]) or 0)
    local recv = now - (opt(ARGV[i + 6]) or 0)
    local pause = -1
    -- An answer or a spend counts once: only while its reservation is still there (a batch
    -- sent again after a lost reply, or one from before Redis restarted empty, is skipped).
    local held = redis.call('ZREM', fkey, id) == 1
    if kind == 'p' or (held and kind ~= 'r') then
        local s = load(hkey)
        if kind == 'o' then
            local obs = {
                has_quota = ARGV[i + 9] == '1',
                limit = opt(ARGV[i + 10]),
                remaining = opt(ARGV[i + 11]),
                reset_after = opt(ARGV[i + 12]),
                window = opt(ARGV[i + 13]),
                retry_after = opt(ARGV[i + 14]),
                bucket = ARGV[i + 15] == '1',
                src = ARGV[i + 16],
            }
            if fkey ~= tkey and s.iws == nil then s.iws = sent end
            pause = observe(s, sent, recv, ARGV[i + 7] == '1', ARGV[i + 8] == '1', obs, base,
                max_delay, tonumber(ARGV[i + 17]) or 0) or -1
        elseif kind == 's' then
            spend(s, sent)
        elseif kind == 'p' then
            local untl = recv + (opt(ARGV[i + 14]) or 0)
            if s.pause then s.pause = math.max(s.pause, untl) else s.pause = untl end
            pause = s.pause
        end
        save(hkey, s)
    end
    out[#out + 1] = pause
    i = i + 18
end
redis.call('PUBLISH', channel, ARGV[5])
return { out, now }
