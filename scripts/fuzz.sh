#!/usr/bin/env bash
# Hostile input: runs schemathesis (property-based API testing, from PyPI)
# against a throwaway server on the embedded cluster, with a registered
# clinic's token, and fails (non-zero exit) on any 500, any server error
# logged, any answer that does not match the OpenAPI document, and any
# schema-valid request refused (except where scripts/fuzz.toml says why).
#
#   scripts/fuzz.sh                 # bounded default budget, for CI (about 4 minutes)
#   MAX_EXAMPLES=50 MAX_TIME=900 scripts/fuzz.sh
#   scripts/fuzz.sh --include-path-regex '^/api/v1/patients'   # extra schemathesis options
#
# Settings (environment):
#   MAX_EXAMPLES  test cases per operation and phase (default 10)
#   MAX_TIME      schemathesis's time budget in seconds (default 180)
#   CHECKS        schemathesis checks (default all)
#   FUZZ_VENV     where schemathesis is installed (default ~/.cache/medicalpro/fuzz-venv)
#   FUZZ_PORT     the server's port on 127.0.0.1 (default 18999)
#   KEEP=1        keep the temporary DATA_DIR, server log and reports
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

max_examples=${MAX_EXAMPLES:-10}
max_time=${MAX_TIME:-180}
checks=${CHECKS:-all}
venv=${FUZZ_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/medicalpro/fuzz-venv}
port=${FUZZ_PORT:-18999}
base="http://127.0.0.1:$port"

if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "installing schemathesis into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi

cargo build --locked -q
work=$(mktemp -d)
# The embedded cluster may run as the `postgres` user: it must reach DATA_DIR.
chmod 711 "$work"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cp "$target_dir/debug/medicalpro" "$work/medicalpro"

server=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server"
    wait "$server" || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

(cd "$work" && exec env -u DATABASE_URL -u MASTER_KEY -u JWT_SECRET \
  DATA_DIR="$work/data" LISTEN_ADDR="127.0.0.1:$port" RUST_LOG=info \
  REGISTRATIONS_PER_ADDRESS_PER_HOUR=1000000 REGISTRATIONS_PER_HOUR=1000000 \
  ./medicalpro serve >"$work/server.log" 2>&1) &
server=$!
for _ in $(seq 1 120); do
  if curl -fsS "$base/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "the server did not start:" >&2
    tail -20 "$work/server.log" >&2
    exit 1
  fi
  sleep 0.5
done

register=$(curl -fsS -X POST "$base/api/v1/auth/register" -H 'Content-Type: application/json' \
  -d '{"clinicName":"Fuzz Clinic","email":"fuzz@example.fr","password":"correct horse battery","firstName":"Fuzz","lastName":"Admin"}')
token=$(printf '%s' "$register" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessToken"])')
# The hooks keep the run from changing this account (see fuzz_hooks.py).
FUZZ_ADMIN_ID=$(printf '%s' "$register" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["user"]["id"])')
FUZZ_TOKEN=$token FUZZ_BASE=$base
export FUZZ_ADMIN_ID FUZZ_TOKEN FUZZ_BASE SCHEMATHESIS_HOOKS="$repo/scripts/fuzz_hooks.py"
# A patient, so that reads of existing rows are exercised too.
curl -fsS -X POST "$base/api/v1/patients" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"firstName":"Marie","lastName":"Curie"}' >/dev/null

started=$(date +%s)
status=0
# One worker: with two, a scenario may delete a row that a concurrent one
# has just created (schemathesis shares the rows it has seen between them),
# which the concurrent scenario then reports as "created resource not found".
(cd "$work" && timeout $((max_time + 120)) "$venv/bin/schemathesis" \
  --config-file "$repo/scripts/fuzz.toml" run "$base/api/v1/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks "$checks" \
  --max-examples "$max_examples" \
  --max-time "$max_time" \
  --workers 1 \
  --generation-database none \
  --report junit --report-dir "$work/report" \
  --no-color "$@") || status=$?
echo "schemathesis finished in $(( $(date +%s) - started )) s with status $status" >&2
# Errors, and the warnings that mean something was lost or left behind (a
# failed seal leaves events pending; a failed platform-audit write loses
# the event), fail the run.
failures='"level":"ERROR"|sealing audit events failed|platform audit write failed'
if grep -Eq "$failures" "$work/server.log"; then
  echo "server errors logged during the run:" >&2
  grep -E "$failures" "$work/server.log" | head -20 >&2
  [ "$status" != 0 ] || status=1
fi
# Which operations of the document the run reached (from the JUnit report).
curl -fsS "$base/api/v1/openapi.json" -o "$work/openapi.json" 2>/dev/null || true
python3 - "$work/openapi.json" "$work/report" <<'PY' >&2 || true
import json, pathlib, re, sys
spec = json.loads(pathlib.Path(sys.argv[1]).read_text())
documented = {f"{m.upper()} {p}" for p, ops in spec.get("paths", {}).items() for m in ops
              if m in ("get", "post", "put", "patch", "delete")}
reached = set()
for report in pathlib.Path(sys.argv[2]).glob("*.xml"):
    reached.update(re.findall(r'<testcase[^>]*name="([A-Z]+ /[^"]*)"', report.read_text()))
reached = {name for name in reached if name in documented}
print(f"operations reached: {len(reached)} of {len(documented)}")
for name in sorted(documented - reached):
    print(f"  not reached: {name}")
PY
exit "$status"
