-- Tallies of answers other than 2xx, per thread, added up in `done`: the
-- documented 503 (`clinic_unavailable` with `Retry-After`) and the rest.
-- Loaded by the scripts that spread requests over many clinics.
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
