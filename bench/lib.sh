# Shared by run.sh and scale.sh: tools, a throwaway server, clinic setup,
# wrk output parsing. Source it; it defines functions and nothing runs.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
ADMIN_ROLE=medicalpro_admin

# Installs wrk, pgbench/psql, jq and curl from the distribution when missing.
need_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v pgbench >/dev/null || missing+=(postgresql-client)
    command -v psql >/dev/null || missing+=(postgresql-client)
    command -v jq >/dev/null || missing+=(jq)
    command -v curl >/dev/null || missing+=(curl)
    command -v ss >/dev/null || missing+=(iproute2)
    ((${#missing[@]} == 0)) && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing tools, install: ${missing[*]}" >&2
        exit 1
    fi
}

# The release binary: $MEDICALPRO_BIN, else built here.
medicalpro_bin() {
    if [ -n "${MEDICALPRO_BIN:-}" ]; then
        echo "$MEDICALPRO_BIN"
        return
    fi
    (cd "$REPO_DIR" && cargo build --release --quiet) >&2
    echo "${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/medicalpro"
}

# A port below the ephemeral range that no socket uses.
free_port() {
    local port
    while :; do
        port=$((10000 + RANDOM % 20000))
        [ -z "$(ss -Htan "( sport = :$port )" 2>/dev/null)" ] && { echo "$port"; return; }
    done
}

# start_server DATA_DIR [VAR=value ...]: `medicalpro serve` on its own
# embedded cluster in DATA_DIR; sets SERVER_PID, BASE and the PG* variables.
start_server() {
    local dir=$1
    shift
    local port
    port=$(free_port)
    # Benchmarks register hundreds of clinics from one address.
    env REGISTRATIONS_PER_ADDRESS_PER_HOUR=1000000 REGISTRATIONS_PER_HOUR=1000000 "$@" \
        DATA_DIR="$dir" LISTEN_ADDR="127.0.0.1:$port" RUST_LOG="${RUST_LOG:-warn}" \
        "$BIN" serve >>"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    SERVER_DATA=$dir
    BASE="http://127.0.0.1:$port"
    local waited=0
    until curl -sf "$BASE/ready" >/dev/null; do
        sleep 0.5
        waited=$((waited + 1))
        if ((waited > 240)) || ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "the server did not become ready; its log:" >&2
            tail -20 "$dir/server.log" >&2
            exit 1
        fi
    done
    export PGHOST=127.0.0.1 PGUSER=$ADMIN_ROLE PGDATABASE=postgres
    PGPORT=$(cat "$dir/pg_port")
    PGPASSWORD=$(cat "$dir/pg_admin_password")
    export PGPORT PGPASSWORD
}

# Stops the server, then waits for its cluster to be down.
stop_server() {
    if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
        local waited=0
        while [ -e "$SERVER_DATA/pg/postmaster.pid" ] && ((waited < 120)); do
            sleep 0.5
            waited=$((waited + 1))
        done
    fi
    SERVER_PID=
}

# Peak resident memory of the server: reset, then read after a scenario.
reset_peak_rss() { echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true; }
peak_rss_mb() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

# pg_cpu_ticks: CPU time of the embedded cluster so far, in clock ticks: the
# utime and stime of the postmaster and of each of its children, and the
# cutime and cstime of the postmaster (its children that have exited, such
# as backends closed during a run). The difference of two readings is the
# cluster's CPU in between.
pg_cpu_ticks() {
    local postmaster
    postmaster=$(head -1 "$SERVER_DATA/pg/postmaster.pid")
    # /proc/PID/stat: after the command, in parentheses: state ppid ... with
    # utime, stime, cutime and cstime the 12th to 15th fields. (A process
    # that exits after the glob fails cat: not an error here.)
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v postmaster="$postmaster" '
        { pid = $1; sub(/^.*\) /, "") }
        pid == postmaster { ticks += $12 + $13 + $14 + $15 }
        $2 == postmaster { ticks += $12 + $13 }
        END { print ticks + 0 }'
}

# srv_cpu_ticks: CPU time of the server process so far, in clock ticks.
srv_cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$SERVER_PID/stat"; }

# machine_ticks: "idle total" clock ticks of all cores so far (/proc/stat).
machine_ticks() { awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

# per_request TICKS COUNT: CPU ticks per request (or transaction) in µs.
per_request() {
    awk -v ticks="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (n > 0) printf "%.0f", ticks * 1e6 / hz / n; else print "-" }'
}

# register_clinic N: a clinic with one patient; prints "email token patient_id".
register_clinic() {
    local email="bench-${RUN_ID}-$1@example.fr" response token patient
    response=$(curl -sf -X POST "$BASE/api/v1/auth/register" -H 'Content-Type: application/json' \
        -d "{\"clinicName\":\"Bench $1\",\"email\":\"$email\",\"password\":\"bench password 1\",\"firstName\":\"Ada\",\"lastName\":\"Bench\"}") ||
        { echo "registration $1 failed" >&2; return 0; }
    token=$(jq -r .data.accessToken <<<"$response")
    patient=$(curl -sf -X POST "$BASE/api/v1/patients" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d '{"firstName":"Marie","lastName":"Curie"}' | jq -r .data.id) ||
        { echo "patient of clinic $1 failed" >&2; return 0; }
    echo "$email $token $patient"
}

# login_again EMAIL: a fresh access token (they last 15 minutes).
login_again() {
    curl -sf -X POST "$BASE/api/v1/auth/login" -H 'Content-Type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"bench password 1\"}" | jq -r .data.accessToken
}

# setup_clinics COUNT FILE [PARALLEL]: registers COUNT clinics into FILE.
setup_clinics() {
    export -f register_clinic
    export BASE RUN_ID
    seq 1 "$1" | xargs -P "${3:-8}" -I{} bash -c 'register_clinic {}' >"$2"
}

# refresh_tokens FILE: the same clinics with new tokens.
refresh_tokens() {
    export -f login_again
    export BASE
    local fresh="$1.fresh"
    # shellcheck disable=SC2016
    xargs -P 8 -L1 bash -c 'echo "$0 $(login_again "$0") $2"' <"$1" >"$fresh"
    mv "$fresh" "$1"
}

# wrk_run ARGS...: runs wrk --latency, prints "rps p50_ms p99_ms errors
# documented_503s requests". With spread.lua or mixed.lua, which tell
# documented 503s (with Retry-After) from other answers, errors are socket
# errors and the other answers; otherwise every answer other than 2xx is an
# error.
wrk_run() {
    local out
    out=$(wrk --latency --timeout 10s "$@")
    echo "$out" >>"$WORK/wrk.log"
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000;
            if (v ~ /ms$/) return v + 0;
            if (v ~ /m$/) return v * 60000;
            if (v ~ /s$/) return v * 1000;
            return v;
        }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        /^Requests\/sec/ { rps = $2 }
        / requests in / { requests = $1 }
        /Non-2xx or 3xx responses/ { non2xx = $5 }
        /Socket errors/ { gsub(",", ""); socket = $4 + $6 + $8 + $10 }
        /^documented 503s:/ { told = 1; documented = $3 }
        /^other errors:/ { other = $3 }
        END {
            errors = socket + (told ? other : non2xx)
            printf "%.1f %.2f %.2f %d %d %d\n", rps, p50, p99, errors, documented, requests
        }' <<<"$out"
}

# median_of RUNS LINES...: of "rps p50 p99 errors [503s]" lines, the run
# with the median throughput, with the errors and 503s of all runs added up.
median_of() {
    printf '%s\n' "$@" | sort -n -k1,1 | awk '
        { line[NR] = $0; errors += $4; documented += $5 }
        END { split(line[int((NR + 1) / 2)], f, " "); printf "%s %s %s %d %d\n", f[1], f[2], f[3], errors, documented }'
}

# percentiles FILE: p50 and p99 of the numbers in FILE (one a line).
percentiles() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "0 0"; exit }
        i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
        i99 = int(NR * 0.99 + 0.999999); if (i99 > NR) i99 = NR
        printf "%.1f %.1f\n", v[i50], v[i99] }'
}

machine() {
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "postgres: $(psql -Atc 'SHOW server_version') max_connections=$(psql -Atc 'SHOW max_connections')"
}
