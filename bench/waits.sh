#!/usr/bin/env bash
# Where a scenario's time goes: runs `read`, `list` and `write` of one clinic
# (as run.sh does) on a throwaway server, and meanwhile samples every 50 ms
# what the clinic's PostgreSQL backends are doing (pg_stat_activity: active
# on CPU, waiting on an event, or idle waiting for the server's next
# statement) and the CPU split between PostgreSQL, the server and wrk.
#
#   bench/waits.sh                           # 10 s per scenario
#   DURATION=5 CLINIC_POOL_MAX=20 bench/waits.sh
#
# Settings (environment): DURATION (10), CONNECTIONS (64), THREADS (2),
# MEDICALPRO_BIN; the server's own settings (such as CLINIC_POOL_MAX) pass
# through to it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
RUN_ID=$(date +%s)

need_tools
BIN=$(medicalpro_bin)
WORK=$(mktemp -d)
chmod 711 "$WORK"
DATA=$WORK/data
mkdir -p "$DATA"
trap 'stop_server; rm -rf "$WORK"' EXIT
start_server "$DATA" ${CLINIC_POOL_MAX:+CLINIC_POOL_MAX=$CLINIC_POOL_MAX}
main=$(RUN_ID=$RUN_ID register_clinic 0)
TOKEN=$(awk '{ print $2 }' <<<"$main")
PATIENT=$(awk '{ print $3 }' <<<"$main")
for i in $(seq 19); do
    curl -sf -X POST "$BASE/api/v1/patients" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -d "{\"firstName\":\"P$i\",\"lastName\":\"Waits\"}" >/dev/null
done
echo "$DURATION s per scenario, $CONNECTIONS connections, CLINIC_POOL_MAX=${CLINIC_POOL_MAX:-5}"

# sample_waits FILE: until killed, one line per clinic backend every 50 ms:
# its state and wait event.
sample_waits() {
    while :; do
        psql -Atc "SELECT CASE WHEN state = 'active' THEN COALESCE(wait_event_type || ':' || wait_event, 'on CPU')
                          ELSE state || COALESCE(' (' || wait_event || ')', '') END
                     FROM pg_stat_activity
                    WHERE datname LIKE 'medicalpro\_clinic\_%' AND backend_type = 'client backend'" >>"$1"
        sleep 0.05
    done
}

proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

for scenario in read list write; do
    case $scenario in
    read) args=("$BASE/api/v1/patients/$PATIENT") ;;
    list) args=("$BASE/api/v1/patients?limit=20") ;;
    write) args=(-s "$BENCH_DIR/write.lua" "$BASE/api/v1/patients") ;;
    esac
    : >"$WORK/waits"
    sample_waits "$WORK/waits" &
    sampler=$!
    pg_before=$(pg_cpu_ticks)
    srv_before=$(srv_cpu_ticks)
    read -r idle_before total_before <<<"$(machine_ticks)"
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" -H "Authorization: Bearer $TOKEN" \
        "${args[@]}" >"$WORK/wrk.out" &
    wrk_pid=$!
    wrk_ticks=0
    while kill -0 "$wrk_pid" 2>/dev/null; do
        wrk_ticks=$(proc_ticks "$wrk_pid" 2>/dev/null || echo "$wrk_ticks")
        sleep 0.2
    done
    wait "$wrk_pid"
    kill "$sampler"
    wait "$sampler" 2>/dev/null || true
    read -r idle_after total_after <<<"$(machine_ticks)"
    requests=$(awk '/ requests in / { print $1 }' "$WORK/wrk.out")
    echo
    echo "$scenario: $(awk '/^Requests\/sec/ { print $2 }' "$WORK/wrk.out") req/s"
    awk -v pg="$(($(pg_cpu_ticks) - pg_before))" -v srv="$(($(srv_cpu_ticks) - srv_before))" \
        -v wrk="$wrk_ticks" -v idle="$((idle_after - idle_before))" -v total="$((total_after - total_before))" \
        -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN {
            printf "  CPU per request: PostgreSQL %.0f us, server %.0f us, wrk %.0f us; machine idle %.0f%%\n",
                pg * 1e6 / hz / n, srv * 1e6 / hz / n, wrk * 1e6 / hz / n, 100 * idle / total }'
    echo "  clinic backends, share of samples:"
    sort "$WORK/waits" | uniq -c | sort -rn | head -8 |
        awk -v total="$(wc -l <"$WORK/waits")" '{ n = $1; $1 = ""; printf "  %5.1f%% %s\n", 100 * n / total, $0 }'
done
