#!/usr/bin/env bash
# Many clinics on one PostgreSQL server left at max_connections = 100:
# provisions CLINICS clinics (default 10,000, fewer if the disk cannot take
# them with a wide margin), then GETs patients as clinics chosen at random
# among all of them (and among 50 of them: a working set within the
# connection budget), sampling the server's connections meanwhile.
#
#   bench/scale.sh                      # up to 10,000 clinics, 60 s run
#   CLINICS=200 DURATION=5 bench/scale.sh
#
# A clinic database takes about 8 MiB uncompressed, mostly PostgreSQL's own
# catalog: 10,000 of them about 80 GiB. When the clinics asked for would not
# fit in DISK_SHARE of the free disk, the cluster goes on a zstd-compressed
# btrfs volume kept in a sparse file (as root; btrfs-progs is installed if
# missing), where catalog pages take a fraction of that. COMPRESS=no keeps
# the plain disk, COMPRESS=yes always compresses.
#
# Settings (environment): TIER (dedicated, or shared: clinics in pods),
# CLINICS (10000), DURATION (60), CONNECTIONS (64),
# THREADS (2), PARALLEL (registrations at once, 8), DISK_SHARE (the share of
# the free disk the clinics may take, 0.25; 0.5 on a compressed volume),
# COMPRESS (auto, yes, no), MEDICALPRO_BIN.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLINICS=${CLINICS:-10000}
DURATION=${DURATION:-60}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PARALLEL=${PARALLEL:-8}
COMPRESS=${COMPRESS:-auto}
RUN_ID=$(date +%s)
UNCOMPRESSED_MIB=8

need_tools
BIN=$(medicalpro_bin)
WORK=$(mktemp -d)
chmod 711 "$WORK" # the cluster may run as the postgres user
VOLUME=
trap 'stop_server; unmount_volume; rm -rf "$WORK"' EXIT

# mount_volume DIR: a compressed btrfs volume at DIR, in a sparse file as
# large as the free disk (it only takes what is written to it).
mount_volume() {
    if [ "$(id -u)" != 0 ]; then
        echo "a compressed volume needs root: run with COMPRESS=no, or fewer CLINICS" >&2
        exit 1
    fi
    command -v mkfs.btrfs >/dev/null || apt-get install -y -qq btrfs-progs >/dev/null
    VOLUME=$WORK/volume.img
    truncate -s "$(df -B1 --output=avail "$WORK" | tail -1)" "$VOLUME"
    mkfs.btrfs -q "$VOLUME" >/dev/null
    mkdir -p "$1"
    mount -o loop,discard,compress-force=zstd:1 "$VOLUME" "$1"
    chmod 711 "$1"
}
unmount_volume() { [ -n "$VOLUME" ] && umount "$WORK/volume" 2>/dev/null; true; }
# Bytes the data really takes on the disk (compressed, on the volume).
disk_used() {
    sync
    if [ -n "$VOLUME" ]; then df -B1 --output=used "$WORK/volume" | tail -1; else du -sB1 "$DATA" | cut -f1; fi
}

free=$(df -B1 --output=avail "$WORK" | tail -1)
uncompressed_fit=$(awk -v f="$free" -v s="${DISK_SHARE:-0.25}" -v c="$UNCOMPRESSED_MIB" 'BEGIN { printf "%d", f * s / (c * 1048576) }')
if [[ $COMPRESS == yes || ($COMPRESS == auto && CLINICS -gt uncompressed_fit) ]]; then
    mount_volume "$WORK/volume"
    DATA=$WORK/volume/data
    DISK_SHARE=${DISK_SHARE:-0.5}
    echo "storage: compressed btrfs volume (zstd) in a sparse file"
else
    DATA=$WORK/data
    DISK_SHARE=${DISK_SHARE:-0.25}
    echo "storage: plain disk"
fi
mkdir -p "$DATA"
# TIER=shared puts every clinic in pods (a schema each), on shared connections.
TIER_SETTING=(${TIER:+DEFAULT_TIER=$TIER})
start_server "$DATA" "${TIER_SETTING[@]}"
machine

# What one clinic costs on disk (ten, to smooth the file system's
# allocation), against what is free.
before=$(disk_used)
setup_clinics 10 "$WORK/clinics" 1
per_clinic=$((($(disk_used) - before) / 10))
((per_clinic > 0)) || per_clinic=1
fits=$(awk -v f="$free" -v s="$DISK_SHARE" -v c="$per_clinic" 'BEGIN { printf "%d", f * s / c }')
echo "one clinic on disk: $((per_clinic / 1024)) KiB; free disk: $((free / 1024 / 1024 / 1024)) GiB; $DISK_SHARE of it holds $fits clinics"
if ((CLINICS > fits)); then
    echo "only $fits of the $CLINICS clinics asked for fit: running with $fits"
    CLINICS=$fits
fi

started=$SECONDS
RUN_ID=$RUN_ID-more setup_clinics "$((CLINICS - 10))" "$WORK/more" "$PARALLEL"
cat "$WORK/more" >>"$WORK/clinics"
provisioned=$(wc -l <"$WORK/clinics")
echo "provisioned $provisioned clinics in $((SECONDS - started)) s"
if ((SECONDS - started > 600)); then
    echo "tokens are near expiry: logging in again"
    refresh_tokens "$WORK/clinics"
fi

# The runs are made on a fresh process and cluster, as after a restart of
# the service. Stopping the cluster waits for its
# shutdown checkpoint, which syncs every file of the new databases (about
# 300 each): minutes after mass provisioning.
restarted=$SECONDS
stop_server
start_server "$DATA" "${TIER_SETTING[@]}"
echo "server restarted in $((SECONDS - restarted)) s"
shuf -n 50 "$WORK/clinics" >"$WORK/clinics-50"

# run NAME FILE: GETs as the clinics of FILE, sampling the server's
# connections every half second; prints one table row.
run() {
    (
        while :; do
            psql -Atc "SELECT COUNT(*), COUNT(*) FILTER (WHERE datname LIKE 'medicalpro\_clinic\_%')
                         FROM pg_stat_activity WHERE backend_type = 'client backend'" 2>/dev/null || true
            sleep 0.5
        done
    ) >"$WORK/connections" &
    local sampler=$! rps p50 p99 errors documented peak
    reset_peak_rss
    read -r rps p50 p99 errors documented _ <<<"$(wrk_run -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" \
        -s "$BENCH_DIR/spread.lua" "$BASE/" -- "$2")"
    kill "$sampler"
    wait "$sampler" 2>/dev/null || true
    peak=$(awk -F'|' '$1 > a { a = $1 } $2 > c { c = $2 } END { printf "%d total, %d clinic", a, c }' "$WORK/connections")
    printf '%-10s %10s %9s %9s %7s %6s %9s  %s\n' "$1" "$rps" "$p50" "$p99" "$errors" "$documented" "$(peak_rss_mb)" "$peak"
}

echo
echo "clinics: $provisioned; server max_connections: $(psql -Atc 'SHOW max_connections')"
printf '%-10s %10s %9s %9s %7s %6s %9s  %s\n' scenario "req/s" "p50 ms" "p99 ms" errors 503s "RSS MB" "peak server connections"
run spread "$WORK/clinics"
run spread-50 "$WORK/clinics-50"
echo "spread: each request as one of all $provisioned clinics at random; spread-50: one of 50 of them"
