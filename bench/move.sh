#!/usr/bin/env bash
# Moving a clinic while it serves: a clinic of PATIENTS patients (registered
# through the API, each with its audit event) on a throwaway server's
# embedded cluster is moved with `medicalpro clinic move` to a second local
# cluster, while one client reads a patient and another creates patients in
# a loop. Prints the move's duration, its write freeze (as the command
# reports it, from the freeze to the switch) and what the readers and
# writers got during the move: read availability is the share of reads
# answered 200.
#
#   bench/move.sh                    # 10,000 patients
#   PATIENTS=2000 bench/move.sh      # a quick look
#
# Settings (environment): PATIENTS (10000), MEDICALPRO_BIN (a built binary;
# default: cargo build --release).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PATIENTS=${PATIENTS:-10000}
need_tools
BIN=$(medicalpro_bin)
WORK=$(mktemp -d)
chmod 711 "$WORK"
RUN_ID=$RANDOM
SECOND=$WORK/second
PG2=$SECOND/pg

# Runs a PostgreSQL program as the unprivileged `postgres` user when root.
as_cluster_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_program() {
    local found
    found=$(command -v "$1" || ls /usr/lib/postgresql/*/bin/"$1" | tail -1)
    echo "$found"
}

cleanup() {
    touch "$WORK/stop"
    as_cluster_owner "$(pg_program pg_ctl)" -D "$PG2" -m fast stop >/dev/null 2>&1 || true
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/data"
start_server "$WORK/data"
medicalpro() { DATA_DIR="$WORK/data" RUST_LOG=warn "$BIN" "$@"; }

# A second cluster with the embedded cluster's admin role and password.
PORT2=$(free_port)
mkdir -p "$SECOND"
echo "$PGPASSWORD" >"$SECOND/pw"
if [ "$(id -u)" = 0 ]; then chown -R postgres "$SECOND"; fi
as_cluster_owner "$(pg_program initdb)" -D "$PG2" -U "$ADMIN_ROLE" --pwfile="$SECOND/pw" \
    --auth=scram-sha-256 >"$WORK/initdb.log"
as_cluster_owner "$(pg_program pg_ctl)" -D "$PG2" -l "$SECOND/log" -w \
    -o "-p $PORT2 -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c wal_level=logical" \
    start >/dev/null
medicalpro server add --name second --url "postgres://$ADMIN_ROLE:$PGPASSWORD@127.0.0.1:$PORT2/postgres" \
    --max-clinics 100 >/dev/null

read -r _email TOKEN PATIENT < <(register_clinic 1)
CLINIC=$(curl -sf "$BASE/api/v1/auth/me" -H "Authorization: Bearer $TOKEN" | jq -r '.data.clinicId // .data.clinic.id')
echo "registering $PATIENTS patients in clinic $CLINIC" >&2
seq 2 "$PATIENTS" | xargs -P 8 -I{} curl -sf -o /dev/null -X POST "$BASE/api/v1/patients" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"firstName":"Bench","lastName":"Patient {}"}'

# Readers and writers, one answer code a line, until the move is over.
reader() {
    while [ ! -e "$WORK/stop" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' "$BASE/api/v1/patients/$PATIENT" \
            -H "Authorization: Bearer $TOKEN"
    done >"$WORK/reads"
}
writer() {
    while [ ! -e "$WORK/stop" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' -X POST "$BASE/api/v1/patients" \
            -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
            -d '{"firstName":"During","lastName":"Move"}'
    done >"$WORK/writes"
}
reader &
READER=$!
writer &
WRITER=$!
sleep 2
medicalpro clinic move "$CLINIC" --server second --json >"$WORK/move.json"
sleep 2
touch "$WORK/stop"
wait "$READER" "$WRITER"

count() { grep -c "^$2" "$WORK/$1" || true; }
reads=$(wc -l <"$WORK/reads")
writes=$(wc -l <"$WORK/writes")
printf '%-28s %s\n' \
    "patients" "$PATIENTS" \
    "move (s)" "$(jq -r '.moved.seconds | . * 10 | round / 10' "$WORK/move.json")" \
    "writes frozen (ms)" "$(jq -r '.moved.freezeMs' "$WORK/move.json")" \
    "reads during the move" "$reads" \
    "  answered 200" "$(count reads 200)" \
    "  answered 503" "$(count reads 503)" \
    "read availability (%)" "$(awk -v ok="$(count reads 200)" -v n="$reads" 'BEGIN { printf "%.2f", 100 * ok / n }')" \
    "writes during the move" "$writes" \
    "  answered 201" "$(count writes 201)" \
    "  answered 503" "$(count writes 503)" \
    "  other answers" "$((writes - $(count writes 201) - $(count writes 503)))"
echo "steps (ms from the start of the move): $(jq -c '.moved.stepsMs' "$WORK/move.json")"
