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
# one patient of one clinic), burst-then-read (the same just after
# BURST_CLINICS other clinics made 3 requests each, their idle connections
# filling the connection budget), list (GET a page of 20), write (POST a
# patient), spread (GET a patient as one of SPREAD_CLINICS clinics at
# random), spread-50 (the same among 50 clinics), mixed (a clinic day among
# MIXED_CLINICS clinics: mostly reads, some writes), spread-shared (spread
# over SPREAD_CLINICS shared-tier clinics), provision-template and
# provision-migrate (REGISTRATIONS registrations one at a time, copying the
# template database or running the migrations), provision-shared (the same
# on the shared tier, taking spare schemas). Next to each, the CPU time
# of the PostgreSQL cluster per request (or transaction).
#
# Settings (environment): DURATION (seconds per run, 30), RUNS (3),
# CONNECTIONS (64), THREADS (2), SPREAD_CLINICS (1000), BURST_CLINICS (60),
# MIXED_CLINICS (200), REGISTRATIONS (200), MEDICALPRO_BIN (a built binary;
# default: cargo build --release). BURST_CLINICS and MIXED_CLINICS are taken
# among the SPREAD_CLINICS clinics.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-30}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SPREAD_CLINICS=${SPREAD_CLINICS:-1000}
BURST_CLINICS=${BURST_CLINICS:-60}
MIXED_CLINICS=${MIXED_CLINICS:-200}
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
declare -A RESULT RSS CPU_TICKS CPU_COUNT SRV_TICKS IDLE

# add_cpu NAME TICKS COUNT: the cluster's CPU during a run of NAME and the
# requests (or transactions) it served, added up over the runs.
add_cpu() {
    CPU_TICKS[$1]=$((${CPU_TICKS[$1]:-0} + $2))
    CPU_COUNT[$1]=$((${CPU_COUNT[$1]:-0} + $3))
}

# pgbench_run ARGS...: runs pgbench in $WORK; prints "tps transactions
# ticks", the last the cluster's CPU meanwhile.
pgbench_run() {
    local before out
    before=$(pg_cpu_ticks)
    out=$(cd "$WORK" && pgbench "$@" 2>/dev/null)
    awk -v ticks="$(($(pg_cpu_ticks) - before))" '/^tps/ && !tps { tps = $3 }
        /actually processed/ { split($NF, n, "/"); done = n[1] }
        END { print tps, done + 0, ticks }' <<<"$out"
}

# floor: PostgreSQL alone, select-only, before the server holds clinic
# connections (64 clients + the server's own must fit in max_connections).
psql -qc "CREATE DATABASE bench_floor"
pgbench -q -i -s 1 bench_floor >/dev/null 2>&1
floor_runs=()
for _ in $(seq "$RUNS"); do
    rm -f "$WORK"/pgbench_log.*
    read -r tps count ticks <<<"$(pgbench_run -S -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" -l bench_floor)"
    add_cpu floor "$ticks" "$count"
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
    read -r tps count ticks <<<"$(pgbench_run -C -S -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" bench_floor)"
    add_cpu floor-connect "$ticks" "$count"
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

# seed_appointment EMAIL TOKEN PATIENT: a practitioner and an appointment of
# the patient with them; prints "email appointment_id".
seed_appointment() {
    local practitioner appointment day
    day=$(date -u -d tomorrow +%F)
    practitioner=$(curl -sf -X POST "$BASE/api/v1/practitioners" -H "Authorization: Bearer $2" \
        -H 'Content-Type: application/json' -d '{"firstName":"Claude","lastName":"Bernard"}' | jq -r .data.id)
    appointment=$(curl -sf -X POST "$BASE/api/v1/appointments" -H "Authorization: Bearer $2" \
        -H 'Content-Type: application/json' \
        -d "{\"patientId\":\"$3\",\"practitionerId\":\"$practitioner\",\"startAt\":\"${day}T09:00:00Z\",\"endAt\":\"${day}T09:30:00Z\"}" |
        jq -r .data.id)
    if [[ $appointment =~ ^[0-9a-f-]{36}$ ]]; then
        echo "$1 $appointment"
    else
        echo "appointment of $1 failed" >&2
    fi
}
# The clinics of `mixed`, each with an appointment.
export -f seed_appointment
# shellcheck disable=SC2016
head -n "$MIXED_CLINICS" "$WORK/clinics" | xargs -P 8 -L1 bash -c 'seed_appointment "$0" "$1" "$2"' >"$WORK/appointments"
echo "mixed: $(wc -l <"$WORK/appointments") clinics with an appointment"

# clinic_subsets: from $WORK/clinics, the clinics of spread-50, of the
# burst, and of mixed (lines with their appointment's id).
clinic_subsets() {
    head -n 50 "$WORK/clinics" >"$WORK/clinics-50"
    head -n "$BURST_CLINICS" "$WORK/clinics" >"$WORK/clinics-burst"
    awk 'NR == FNR { appointment[$1] = $2; next } $1 in appointment { print $0, appointment[$1] }' \
        "$WORK/appointments" "$WORK/clinics" >"$WORK/clinics-mixed"
}
clinic_subsets

# The scenarios run on a fresh process and cluster: no clinic connection
# open, the registrations' checkpoint done.
stop_server
start_server "$DATA"

# floor-audited: PostgreSQL alone doing a read the way one is audited
# without group commit (one statement: the patient's row and its own audit
# event, committed alone, one flush per read), at the same concurrency, as
# the admin role in the bench clinic's database; before the server holds
# clinic connections. `read` groups the events of concurrent reads in one
# commit, so it may exceed it.
read -r CLINIC_DB USER_ID CLINIC_ROLE <<<"$(psql -d medicalpro_central -Atc "SELECT c.db_name || ' ' || u.id || ' ' || c.db_user
    FROM users u JOIN companies c ON c.id = u.company_id WHERE u.email = '$MAIN_EMAIL'")"
cat >"$WORK/read.sql" <<'SQL'
SELECT read.*, audit_events_append(:user_id, 'admin', 'read', 'patient', :patient, :patient,
    'bench', '127.0.0.1', '{}', '{}') AS audit_chained
  FROM (SELECT * FROM patients WHERE id = :patient AND deleted_at IS NULL) AS read;
SQL
audited_runs=()
for _ in $(seq "$RUNS"); do
    rm -f "$WORK"/pgbench_log.*
    read -r tps count ticks <<<"$(pgbench_run -n -f read.sql -M prepared -D user_id="$USER_ID" -D patient="$PATIENT" \
        -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" -l "$CLINIC_DB")"
    add_cpu floor-audited "$ticks" "$count"
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
    clinic_subsets
    TOKENS_AT=$SECONDS
}

# [BEFORE_RUN=COMMAND] scenario NAME WRK_ARGS...: RUNS runs of wrk, COMMAND
# before each; the median run, peak RSS, and the cluster's CPU during the
# runs.
scenario() {
    local name=$1
    shift
    local runs=() before srv_before machine_before line idle=0 total=0
    fresh_tokens
    reset_peak_rss
    for _ in $(seq "$RUNS"); do
        if [ -n "${BEFORE_RUN:-}" ]; then
            "$BEFORE_RUN"
        fi
        before=$(pg_cpu_ticks)
        srv_before=$(srv_cpu_ticks)
        machine_before=$(machine_ticks)
        line=$(wrk_run -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" "$@")
        add_cpu "$name" "$(($(pg_cpu_ticks) - before))" "$(awk '{ print $6 }' <<<"$line")"
        SRV_TICKS[$name]=$((${SRV_TICKS[$name]:-0} + $(srv_cpu_ticks) - srv_before))
        read -r idle_now total_now <<<"$(machine_ticks)"
        read -r idle_before total_before <<<"$machine_before"
        idle=$((idle + idle_now - idle_before))
        total=$((total + total_now - total_before))
        runs+=("$line")
    done
    IDLE[$name]=$(awk -v i="$idle" -v t="$total" 'BEGIN { if (t > 0) printf "%.0f%%", 100 * i / t; else print "-" }')
    RESULT[$name]=$(median_of "${runs[@]}")
    RSS[$name]=$(peak_rss_mb)
}

# backends: "all clinic backends, the main clinic's" from pg_stat_activity.
backends() {
    psql -Atc "SELECT COUNT(*) FILTER (WHERE datname LIKE 'medicalpro\_clinic\_%'),
            COUNT(*) FILTER (WHERE usename = '$CLINIC_ROLE' AND datname = '$CLINIC_DB')
        FROM pg_stat_activity WHERE backend_type = 'client backend'" | tr '|' ' '
}

# burst: the BURST_CLINICS clinics GET their patient 3 times each, 8 clinics
# at once: their idle connections fill the connection budget. The first time,
# samples the backends right after and 1 s later (during the run).
BURSTS=0
burst() {
    export BASE
    # shellcheck disable=SC2016
    xargs -P 8 -L1 bash -c 'for _ in 1 2 3; do
        curl -s -o /dev/null -w "%{http_code}\n" -H "Authorization: Bearer $1" "$BASE/api/v1/patients/$2"
    done' <"$WORK/clinics-burst" >>"$WORK/burst-codes"
    BURSTS=$((BURSTS + 1))
    ((BURSTS == 1)) || return 0
    backends >"$WORK/burst-backends"
    (sleep 1 && backends) >>"$WORK/burst-backends" &
    BURST_SAMPLER=$!
}

scenario read -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/patients/$PATIENT"
scenario list -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/patients?limit=20"
scenario write -H "Authorization: Bearer $TOKEN" -s "$BENCH_DIR/write.lua" "$BASE/api/v1/patients"
# burst-then-read runs after list and write: the burst takes the main
# clinic's connections, which would change what those two measure.
BEFORE_RUN=burst scenario burst-then-read -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/patients/$PATIENT"
wait "$BURST_SAMPLER" || true
read -r burst_all burst_main main_later <<<"$(awk 'NR == 1 { a = $1; m = $2 } NR == 2 { l = $2 }
    END { print (a == "" ? "?" : a), (m == "" ? "?" : m), (l == "" ? "?" : l) }' "$WORK/burst-backends")"
burst_failed=$(awk '$1 !~ /^2/ { n++ } END { print n + 0 }' "$WORK/burst-codes")
scenario spread -s "$BENCH_DIR/spread.lua" "$BASE/" -- "$WORK/clinics"
scenario spread-50 -s "$BENCH_DIR/spread.lua" "$BASE/" -- "$WORK/clinics-50"
scenario mixed -s "$BENCH_DIR/mixed.lua" "$BASE/" -- "$WORK/clinics-mixed"

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

# The shared tier: SPREAD_CLINICS clinics in pods (POD_MAX_CLINICS each),
# spread-shared (each request as one of them at random), then
# provision-shared (registrations one at a time, each taking a spare schema
# laid out ahead when its pod has one).
stop_server
start_server "$DATA" DEFAULT_TIER=shared
RUN_ID=$RUN_ID-shared setup_clinics "$SPREAD_CLINICS" "$WORK/clinics-shared" 8
echo "spread-shared: $(wc -l <"$WORK/clinics-shared") shared clinics ready"
scenario spread-shared -s "$BENCH_DIR/spread.lua" "$BASE/" -- "$WORK/clinics-shared"
provision provision-shared

floor_rps=$(awk '{ print $1 }' <<<"${RESULT[floor]}")
read_rps=$(awk '{ print $1 }' <<<"${RESULT[read]}")
echo
printf '%-18s %10s %9s %9s %7s %6s %9s %9s %11s %12s %7s\n' scenario "req/s" "p50 ms" "p99 ms" errors 503s "RSS MB" "vs floor" "pg cpu/req" "srv cpu/req" "idle"
for name in floor floor-connect floor-audited read burst-then-read list write spread spread-50 mixed \
    spread-shared provision-template provision-migrate provision-shared; do
    read -r rps p50 p99 errors documented <<<"${RESULT[$name]}"
    ratio=$(awk -v a="$rps" -v b="$floor_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')
    [[ $name == provision-* ]] && ratio="-"
    printf '%-18s %10s %9s %9s %7s %6s %9s %9s %11s %12s %7s\n' "$name" "$rps" "$p50" "$p99" "$errors" "${documented:-0}" "${RSS[$name]}" "$ratio" \
        "$(per_request "${CPU_TICKS[$name]:-0}" "${CPU_COUNT[$name]:-0}")" \
        "$(per_request "${SRV_TICKS[$name]:-0}" "${CPU_COUNT[$name]:-0}")" "${IDLE[$name]:--}"
done
spread_rps=$(awk '{ print $1 }' <<<"${RESULT[spread]}")
audited_rps=$(awk '{ print $1 }' <<<"${RESULT[floor-audited]}")
echo "read / floor-audited: $(awk -v a="$read_rps" -v b="$audited_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
echo "spread / read: $(awk -v a="$spread_rps" -v b="$read_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
echo "spread-shared / read: $(awk -v a="$(awk '{ print $1 }' <<<"${RESULT[spread-shared]}")" -v b="$read_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
echo "burst-then-read / read: $(awk -v a="$(awk '{ print $1 }' <<<"${RESULT[burst-then-read]}")" -v b="$read_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
echo "spread: each request as one of $SPREAD_CLINICS clinics at random; spread-50: one of 50 (they fit in the connection budget); spread-shared: one of $(wc -l <"$WORK/clinics-shared") shared-tier clinics"
echo "burst-then-read: read just after $(wc -l <"$WORK/clinics-burst") other clinics made 3 GETs each, before each run ($burst_failed of $(wc -l <"$WORK/burst-codes") answers not 2xx); after the first burst $burst_all clinic backends were open, $burst_main of the main clinic; 1 s into the run the main clinic held $main_later"
echo "mixed: each request as one of $(wc -l <"$WORK/clinics-mixed") clinics at random: 70% GET a patient, 10% GET an appointment, 15% GET 20 patients, 5% POST a patient"
echo "errors: failed connections and answers other than 2xx; 503s: the documented clinic_unavailable with Retry-After (spread and mixed scenarios), not counted as errors"
echo "pg cpu/req: CPU time of the PostgreSQL cluster's processes (the exited ones included) per request or transaction, in µs"
echo "srv cpu/req: CPU time of the medicalpro process per request, in µs; idle: share of the machine's CPU left idle during the runs (the rest went to PostgreSQL, the server and wrk itself)"
echo "provision rows: registrations/s done one at a time; p50/p99 of the server's own provisioning time"
