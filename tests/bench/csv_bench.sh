#!/usr/bin/env bash
# make bench-csv: CSV split (with a mapping) against the JSON path on the same users: MB/s and
# users/s of each, and peak RSS at two sizes (flat memory means the same RSS at both).
# Usage: bash tests/bench/csv_bench.sh [USERS_SMALL USERS_LARGE]   (default 200000 1000000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SMALL="${1:-200000}"
LARGE="${2:-1000000}"
PY="${PYTHON:-python3}"
BENCH_DIR="${BENCH_DIR:-bench-data}/csv"
mkdir -p "$BENCH_DIR"
if [[ -n "${BENCH_CLI:-}" ]]; then CLI="$BENCH_CLI"; else
    cargo build --release -p auth0-s3-import >&2
    CLI=target/release/auth0-s3-import
fi
printf '| input | users | MB | wall s | MB/s | users/s | peak RSS MB |\n|---|---:|---:|---:|---:|---:|---:|\n'
for n in "$SMALL" "$LARGE"; do
    prefix="$BENCH_DIR/users-$n"
    [[ -f "$prefix.csv" ]] || "$PY" tests/bench/gen_csv_users.py "$n" "$prefix"
    for kind in csv json; do
        file="$prefix.$kind"
        out="$BENCH_DIR/out-$n-$kind"
        rm -rf "$out"
        args=(split "$file" --out "$out")
        [[ $kind == csv ]] && args+=(--mapping tests/bench/bench_mapping.toml)
        /usr/bin/time -v "$CLI" "${args[@]}" >/dev/null 2>"$BENCH_DIR/time.txt" || true
        wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$BENCH_DIR/time.txt" \
            | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }')
        rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$BENCH_DIR/time.txt")
        bytes=$(stat -c %s "$file")
        accepted=$(grep -o '"users_accepted": *[0-9]*' "$out/manifest.json" | grep -o '[0-9]*$')
        [[ "$accepted" == "$n" ]] || { echo "csv_bench: $file: $accepted of $n users accepted" >&2; exit 1; }
        awk -v k="$kind" -v n="$n" -v b="$bytes" -v w="$wall" -v r="$rss" 'BEGIN {
            printf "| %s | %d | %.0f | %.2f | %.1f | %.0f | %s |\n", k, n, b / 1e6, w, b / 1e6 / w, n / w, r }'
    done
done
