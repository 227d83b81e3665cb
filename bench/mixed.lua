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

-- The answers' tally, from the file beside this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "tally.lua")
