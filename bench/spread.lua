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

-- The answers' tally, from the file beside this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "tally.lua")
