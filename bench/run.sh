#!/usr/bin/env bash
# MedicalPro benchmarks on a throwaway server and embedded cluster (default
# PostgreSQL settings, so max_connections = 100). Prints one table.
#
#   bench/run.sh                     # 30 s per run, 3 runs, 1,000 clinics
#   DURATION=5 SPREAD_CLINICS=100 REGISTRATIONS=20 bench/run.sh   # a quick look
#
# Scenarios: floor (pgbench -S -M prepared on the same cluster),
# floor-connect (pgbench -S with a new connection per query), floor-audited
# (pgbench running the statement a read runs: the row and its audit event,
# in the bench clinic's database), read (GET
# one patient of one clinic), list (GET a page of 20), write (POST a
# patient), spread (GET a patient as one of SPREAD_CLINICS clinics at
# random), spread-50 (the same among 50 clinics), provision-template and
# provision-migrate (REGISTRATIONS registrations one at a time, copying the
# template database or running the migrations).
#
# Settings (environment): DURATION (seconds per run, 30), RUNS (3),
# CONNECTIONS (64), THREADS (2), SPREAD_CLINICS (1000), REGISTRATIONS (200),
# MEDICALPRO_BIN (a built binary; default: cargo build --release).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-30}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SPREAD_CLINICS=${SPREAD_CLINICS:-1000}
REGISTRATIONS=${REGISTRATIONS:-200}
RUN_ID=$(date +%s)

need_tools
BIN=$(medicalpro_bin)
WORK=$(mktemp -d)
chmod 711 "$WORK" # the cluster may run as the postgres user
DATA=$WORK/data
mkdir -p "$DATA"
trap 'stop_server; rm -rf "$WORK"' EXIT
start_server "$DATA"
machine
echo "runs: $RUNS x ${DURATION}s, $CONNECTIONS connections, $THREADS wrk threads"
declare -A RESULT RSS

# floor: PostgreSQL alone, select-only, before the server holds clinic
# connections (64 clients + the server's own must fit in max_connections).
psql -qc "CREATE DATABASE bench_floor"
pgbench -q -i -s 1 bench_floor >/dev/null 2>&1
floor_runs=()
for _ in $(seq "$RUNS"); do
    rm -f "$WORK"/pgbench_log.*
    tps=$(cd "$WORK" && pgbench -S -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" -l bench_floor 2>/dev/null |
        awk '/^tps/ { print $3; exit }')
    cat "$WORK"/pgbench_log.* | awk '{ print $3 / 1000 }' >"$WORK/latencies"
    failed=$(cat "$WORK"/pgbench_log.* | awk '$3 == "failed" { n++ } END { print n + 0 }')
    floor_runs+=("$(printf '%.1f' "$tps") $(percentiles "$WORK/latencies") $failed")
done
RESULT[floor]=$(median_of "${floor_runs[@]}")
RSS[floor]="-"
# floor-connect: the same with a new connection per query (pgbench -C),
# what a request pays when its clinic has no connection open.
connect_runs=()
for _ in $(seq "$RUNS"); do
    # (pgbench's per-query latencies leave the connection out: not shown)
    tps=$(pgbench -C -S -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" bench_floor 2>/dev/null |
        awk '/^tps/ { print $3; exit }')
    connect_runs+=("$(printf '%.1f' "$tps") - - 0")
done
RESULT[floor-connect]=$(median_of "${connect_runs[@]}")
RSS[floor-connect]="-"
psql -qc "DROP DATABASE bench_floor"

# One clinic with 50 patients, and the clinics of `spread`.
TOKENS_AT=$SECONDS
main=$(RUN_ID=$RUN_ID-main register_clinic 0)
MAIN_EMAIL=$(awk '{ print $1 }' <<<"$main")
TOKEN=$(awk '{ print $2 }' <<<"$main")
PATIENT=$(awk '{ print $3 }' <<<"$main")
for i in $(seq 49); do
    curl -sf -X POST "$BASE/api/v1/patients" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -d "{\"firstName\":\"P$i\",\"lastName\":\"Bench\"}" >/dev/null
done
RUN_ID=$RUN_ID-spread setup_clinics "$SPREAD_CLINICS" "$WORK/clinics" 8
echo "spread: $(wc -l <"$WORK/clinics") clinics ready"
head -50 "$WORK/clinics" >"$WORK/clinics-50"

# The scenarios run on a fresh process and cluster: no clinic connection
# open, the registrations' checkpoint done.
stop_server
start_server "$DATA"

# floor-audited: PostgreSQL alone doing what `read` asks of it (one
# statement: the patient's row and its audit event, committed), at the same
# concurrency, as the admin role in the bench clinic's database; before the
# server holds clinic connections.
read -r CLINIC_DB USER_ID <<<"$(psql -d medicalpro_central -Atc "SELECT c.db_name || ' ' || u.id
    FROM users u JOIN companies c ON c.id = u.company_id WHERE u.email = '$MAIN_EMAIL'")"
cat >"$WORK/read.sql" <<'SQL'
SELECT read.*, audit_events_append(:user_id, 'admin', 'read', 'patient', :patient, :patient,
    'bench', '127.0.0.1', '{}', '{}') AS audit_chained
  FROM (SELECT * FROM patients WHERE id = :patient AND deleted_at IS NULL) AS read;
SQL
audited_runs=()
for _ in $(seq "$RUNS"); do
    rm -f "$WORK"/pgbench_log.*
    tps=$(cd "$WORK" && pgbench -n -f read.sql -M prepared -D user_id="$USER_ID" -D patient="$PATIENT" \
        -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" -l "$CLINIC_DB" 2>/dev/null |
        awk '/^tps/ { print $3; exit }')
    cat "$WORK"/pgbench_log.* | awk '{ print $3 / 1000 }' >"$WORK/latencies"
    failed=$(cat "$WORK"/pgbench_log.* | awk '$3 == "failed" { n++ } END { print n + 0 }')
    audited_runs+=("$(printf '%.1f' "$tps") $(percentiles "$WORK/latencies") $failed")
done
RESULT[floor-audited]=$(median_of "${audited_runs[@]}")
RSS[floor-audited]="-"

# Access tokens last 15 minutes: new ones when the old are 10 minutes old.
fresh_tokens() {
    ((SECONDS - TOKENS_AT < 600)) && return
    TOKEN=$(login_again "$MAIN_EMAIL")
    refresh_tokens "$WORK/clinics"
    head -50 "$WORK/clinics" >"$WORK/clinics-50"
    TOKENS_AT=$SECONDS
}

scenario() {
    local name=$1
    shift
    local runs=()
    fresh_tokens
    reset_peak_rss
    for _ in $(seq "$RUNS"); do
        runs+=("$(wrk_run -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" "$@")")
    done
    RESULT[$name]=$(median_of "${runs[@]}")
    RSS[$name]=$(peak_rss_mb)
}

scenario read -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/patients/$PATIENT"
scenario list -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/patients?limit=20"
scenario write -H "Authorization: Bearer $TOKEN" -s "$BENCH_DIR/write.lua" "$BASE/api/v1/patients"
scenario spread -s "$BENCH_DIR/spread.lua" "$BASE/" -- "$WORK/clinics"
scenario spread-50 -s "$BENCH_DIR/spread.lua" "$BASE/" -- "$WORK/clinics-50"

# provision: sequential registrations; the server's own measure of each
# provisioning (platform audit), with the template, then without.
provision() {
    local name=$1 mark
    mark=$(psql -d medicalpro_central -Atc "SELECT COALESCE(MAX(id), 0) FROM audit_logs")
    psql -qc CHECKPOINT
    reset_peak_rss
    local started=$SECONDS
    RUN_ID=$RUN_ID-$name setup_clinics "$REGISTRATIONS" "$WORK/$name" 1
    local elapsed=$((SECONDS - started))
    psql -d medicalpro_central -Atc "SELECT details->>'durationMs' FROM audit_logs
        WHERE id > $mark AND action = 'clinic.provisioned'" >"$WORK/$name.ms"
    local done
    done=$(wc -l <"$WORK/$name.ms")
    RESULT[$name]="$(awk -v n="$done" -v s="$elapsed" 'BEGIN { printf "%.1f", n / (s > 0 ? s : 1) }') $(percentiles "$WORK/$name.ms") $((REGISTRATIONS - done))"
    RSS[$name]=$(peak_rss_mb)
}
provision provision-template
stop_server
start_server "$DATA" PROVISION_FROM_TEMPLATE=false
provision provision-migrate

floor_rps=$(awk '{ print $1 }' <<<"${RESULT[floor]}")
read_rps=$(awk '{ print $1 }' <<<"${RESULT[read]}")
echo
printf '%-18s %10s %9s %9s %7s %6s %9s %9s\n' scenario "req/s" "p50 ms" "p99 ms" errors 503s "RSS MB" "vs floor"
for name in floor floor-connect floor-audited read list write spread spread-50 provision-template provision-migrate; do
    read -r rps p50 p99 errors documented <<<"${RESULT[$name]}"
    ratio=$(awk -v a="$rps" -v b="$floor_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')
    [[ $name == provision-* ]] && ratio="-"
    printf '%-18s %10s %9s %9s %7s %6s %9s %9s\n' "$name" "$rps" "$p50" "$p99" "$errors" "${documented:-0}" "${RSS[$name]}" "$ratio"
done
spread_rps=$(awk '{ print $1 }' <<<"${RESULT[spread]}")
audited_rps=$(awk '{ print $1 }' <<<"${RESULT[floor-audited]}")
echo "read / floor-audited: $(awk -v a="$read_rps" -v b="$audited_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
echo "spread / read: $(awk -v a="$spread_rps" -v b="$read_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
echo "spread: each request as one of $SPREAD_CLINICS clinics at random; spread-50: one of 50 (they fit in the connection budget)"
echo "errors: failed connections and answers other than 2xx; 503s: the documented clinic_unavailable with Retry-After (spread scenarios), not counted as errors"
echo "provision rows: registrations/s done one at a time; p50/p99 of the server's own provisioning time"
