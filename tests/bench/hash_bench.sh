#!/usr/bin/env bash
# make bench-hash: (1) one `hash check` per algorithm at its default work factor, in process
# (release build); (2) the canary check's added time on a ~100 MB drop: split without canaries,
# with 3 passing canaries, and with 1 failing canary (which also runs the doctor), median of N.
# Usage: bash tests/bench/hash_bench.sh [--repeat N]
set -euo pipefail
REPEAT=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --repeat) REPEAT="$2"; shift 2 ;;
        *) echo "usage: hash_bench.sh [--repeat N]" >&2; exit 2 ;;
    esac
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-.venv/bin/python}"
BENCH_DIR="${BENCH_DIR:-bench-data}"
mkdir -p "$BENCH_DIR"
WORK="$(mktemp -d "$BENCH_DIR/hash.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "## hash check, per algorithm (in process, release build)"
"$PY" tests/vectors/gen_hash_vectors.py --bench "$WORK/records.json"
nice cargo run --quiet --release -p auth0-password-hash --example check_cost -- "$WORK/records.json" 5

echo
echo "## canary on a ~100 MB drop"
CLI="${BENCH_CLI:-target/release/auth0-s3-import}"
[[ -n "${BENCH_CLI:-}" ]] || nice cargo build --quiet --release -p auth0-s3-import
DROP="$BENCH_DIR/canary-100M.ndjson"
if [[ ! -f "$DROP" ]]; then
    "$PY" tests/data/gen_export.py --bytes 100M --format ndjson --seed 42 --out "$WORK/base.ndjson"
    # The canaries' own records (bcrypt cost 10, argon2 m=65536, pbkdf2 i=100000) go in the middle.
    "$PY" - "$WORK/records.json" "$WORK/base.ndjson" "$DROP" <<'PYEOF'
import json, sys
records = json.load(open(sys.argv[1]))
picked = [r for r in records if r["algorithm"].split()[0] in ("bcrypt", "argon2id", "pbkdf2-sha256")]
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
middle = len(lines) // 2
for i, r in enumerate(picked):
    r["record"]["email"] = "canary%d@bench.example" % i
    lines.insert(middle + i * 1000, json.dumps(r["record"]))
open(sys.argv[3], "w", encoding="utf-8").write("\n".join(lines) + "\n")
PYEOF
fi
"$PY" - "$WORK/records.json" "$WORK" <<'PYEOF'
import json, sys
records = json.load(open(sys.argv[1]))
picked = [r for r in records if r["algorithm"].split()[0] in ("bcrypt", "argon2id", "pbkdf2-sha256")]
good = [{"email": "canary%d@bench.example" % i, "password": r["password"]} for i, r in enumerate(picked)]
json.dump(good, open(sys.argv[2] + "/good.json", "w"))
bad = [dict(good[2], password=good[2]["password"] + "-wrong")]
json.dump(bad, open(sys.argv[2] + "/bad.json", "w"))
PYEOF
ls -l "$DROP" | awk '{printf "drop: %.1f MB\n", $5/1e6}'
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_split() {  # label, extra args...
    local label="$1"; shift
    local times=()
    for _ in $(seq "$REPEAT"); do
        rm -rf "$WORK/out"
        local start end
        start=$(date +%s%N)
        nice "$CLI" split "$DROP" --out "$WORK/out" "$@" >"$WORK/stdout" || true
        end=$(date +%s%N)
        times+=("$(( (end - start) / 1000000 ))")
    done
    printf '| %s | %s | %s |\n' "$label" "$(printf '%s\n' "${times[@]}" | median)" "$(grep -E '^canaries' "$WORK/stdout" || echo -)"
}
echo "| split | median ms (of $REPEAT) | canaries |"
echo "|---|---:|---|"
time_split "no canaries"
time_split "3 canaries, all pass (bcrypt 10, argon2 64 MiB, pbkdf2 100k)" --canary "$WORK/good.json"
time_split "1 canary fails (pbkdf2 100k) + doctor" --canary "$WORK/bad.json"
