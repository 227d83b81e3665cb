-- Each request as one of many clinics, chosen at random: reads lines
-- "email token patient_id" from the file given after `--`.
local clinics = {}

function init(args)
    for line in io.lines(args[1]) do
        local token, id = line:match("^%S+%s+(%S+)%s+(%S+)$")
        if token then
            clinics[#clinics + 1] = { token, id }
        end
    end
    -- Threads share no state: seed each from its own table's address.
    math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
    local clinic = clinics[math.random(#clinics)]
    return wrk.format("GET", "/api/v1/patients/" .. clinic[2],
        { ["Authorization"] = "Bearer " .. clinic[1] })
end

-- Tallies of answers other than 2xx, per thread, added up in `done`: the
-- documented 503 (`clinic_unavailable` with `Retry-After`) and the rest.
local threads = {}
documented = 0
other = 0

function setup(thread)
    threads[#threads + 1] = thread
end

function response(status, headers, body)
    if status >= 200 and status < 300 then
        return
    end
    if status == 503 and (headers["retry-after"] or headers["Retry-After"]) then
        documented = documented + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local d, o = 0, 0
    for _, thread in ipairs(threads) do
        d = d + thread:get("documented")
        o = o + thread:get("other")
    end
    io.write(string.format("documented 503s: %d\nother errors: %d\n", d, o))
end
