-- A clinic day: each request as one of many clinics, chosen at random, and
-- mostly reads: 70 % GET a patient, 10 % GET an appointment, 15 % GET a page
-- of 20 patients, 5 % POST a patient. Reads lines "email token patient_id
-- appointment_id" from the file given after `--`.
local clinics = {}

function init(args)
    for line in io.lines(args[1]) do
        local token, patient, appointment = line:match("^%S+%s+(%S+)%s+(%S+)%s+(%S+)$")
        if token then
            clinics[#clinics + 1] = { token = token, patient = patient, appointment = appointment }
        end
    end
    -- Threads share no state: seed each from its own table's address.
    math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

local body = '{"firstName":"Louis","lastName":"Pasteur","email":"louis@example.fr"}'

function request()
    local clinic = clinics[math.random(#clinics)]
    local headers = { ["Authorization"] = "Bearer " .. clinic.token }
    local roll = math.random(100)
    if roll <= 70 then
        return wrk.format("GET", "/api/v1/patients/" .. clinic.patient, headers)
    elseif roll <= 80 then
        return wrk.format("GET", "/api/v1/appointments/" .. clinic.appointment, headers)
    elseif roll <= 95 then
        return wrk.format("GET", "/api/v1/patients?limit=20", headers)
    end
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/api/v1/patients", headers, body)
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
