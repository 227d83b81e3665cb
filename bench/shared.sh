#!/usr/bin/env bash
# The shared tier, run after run: SPREAD_CLINICS clinics in pods, then RUNS
# consecutive runs of DURATION seconds each GETting a patient as one of them
# at random, each run's figures printed on its own (no median): a pod's
# backends fill their caches (relations, the trail's PL/pgSQL functions)
# for every clinic schema they serve, so the first runs show that warm-up
# and the last ones the steady state. A one-clinic read on the same server
# is printed first, as the reference.
#
#   bench/shared.sh
#   SPREAD_CLINICS=300 RUNS=4 DURATION=15 bench/shared.sh
#
# Settings (environment): SPREAD_CLINICS (1000), RUNS (5), DURATION (20),
# CONNECTIONS (64), THREADS (2), POD_MAX_CLINICS (500), MEDICALPRO_BIN.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SPREAD_CLINICS=${SPREAD_CLINICS:-1000}
RUNS=${RUNS:-5}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
RUN_ID=$(date +%s)

need_tools
BIN=$(medicalpro_bin)
WORK=$(mktemp -d)
chmod 711 "$WORK" # the cluster may run as the postgres user
DATA=$WORK/data
mkdir -p "$DATA"
trap 'stop_server; rm -rf "$WORK"' EXIT
start_server "$DATA" DEFAULT_TIER=shared POD_MAX_CLINICS="${POD_MAX_CLINICS:-500}"
machine
started=$SECONDS
setup_clinics "$SPREAD_CLINICS" "$WORK/clinics" 8
echo "$(wc -l <"$WORK/clinics") shared clinics ready in $((SECONDS - started)) s; runs: $DURATION s, $CONNECTIONS connections"
read -r _ TOKEN PATIENT <<<"$(head -1 "$WORK/clinics")"

# run NAME WRK_ARGS...: one run; prints its req/s, p50, p99, errors and the
# cluster's CPU per request.
run() {
    local name=$1 before line
    shift
    before=$(pg_cpu_ticks)
    line=$(wrk_run -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" "$@")
    read -r rps p50 p99 errors documented requests <<<"$line"
    printf '%-10s %10s %9s %9s %7s %6s %11s\n' "$name" "$rps" "$p50" "$p99" "$errors" "${documented:-0}" \
        "$(per_request "$(($(pg_cpu_ticks) - before))" "$requests")"
}

printf '%-10s %10s %9s %9s %7s %6s %11s\n' run "req/s" "p50 ms" "p99 ms" errors 503s "pg cpu/req"
run read -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/patients/$PATIENT"
for i in $(seq "$RUNS"); do
    run "spread-$i" -s "$BENCH_DIR/spread.lua" "$BASE/" -- "$WORK/clinics"
done
echo "pg cpu/req: CPU time of the PostgreSQL cluster's processes per request, in µs"
