#!/usr/bin/env bash
# What the split benchmark's 40x target leaves for the work: on one input, in turns, times
#   - the CLI (`auth0-s3-import split`, the benchmark's command),
#   - the naive baseline (`baseline_split.py`, as run_bench.sh runs it),
#   - `split -b` cutting the same bytes into files of the same size (reading and writing alone),
#   - sonic-rs parsing each record on one thread (`parse_floor` example; no validation, no files).
# Usage: bash tests/bench/floor.sh [--repeat N] [FILE]   (FILE: default bench-data/export-100M-seed42.json,
#        made by `make bench` / run_bench.sh). BENCH_CLI as in run_bench.sh.
set -euo pipefail

REPEAT=5
MAX_CHUNK_BYTES=500000
die() { echo "floor: error: $*" >&2; exit 1; }
log() { echo "floor: $*" >&2; }

INPUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --repeat) [[ $# -ge 2 ]] || die "--repeat needs a value"; REPEAT="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) INPUT="$1"; shift ;;
    esac
done
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer, got '$REPEAT'"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
INPUT="${INPUT:-bench-data/export-100M-seed42.json}"
[[ -f "$INPUT" ]] || die "$INPUT not found: run 'bash tests/bench/run_bench.sh --sizes 100M' first, or name a file"
TIME_BIN=/usr/bin/time
[[ -x "$TIME_BIN" ]] || die "GNU time not found at $TIME_BIN (apt-get install time)"
command -v split >/dev/null || die "coreutils split not found"

# Two builds: with --example, cargo builds only the examples of the packages named, not their
# binaries, so the CLI needs its own (skipped when BENCH_CLI names one, as in run_bench.sh).
if [[ -n "${BENCH_CLI:-}" ]]; then
    CLI="$BENCH_CLI"
    log "using BENCH_CLI=$CLI (no build)"
else
    log "building the CLI (release)"
    cargo build --release -p auth0-s3-import >&2 || die "release build of the CLI failed"
    CLI=target/release/auth0-s3-import
fi
log "building the parse_floor example (release)"
cargo build --release -p import-core --example parse_floor >&2 || die "release build of parse_floor failed"
FLOOR=target/release/examples/parse_floor
[[ -x "$CLI" ]] || die "CLI binary '$CLI' not found"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/floor.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# timed LABEL CMD... : appends "wall user sys" to $WORK/LABEL (output folder deleted first, as
# run_bench.sh does before each run)
timed() {
    local label="$1"; shift
    rm -rf "$WORK/out"
    cat "$INPUT" >/dev/null
    "$TIME_BIN" -f "%e %U %S" -o "$WORK/time" "$@" >"$WORK/stdout" 2>"$WORK/stderr" \
        || { tail -n 20 "$WORK/stderr" >&2; die "$label failed: $*"; }
    cat "$WORK/time" >>"$WORK/$label"
}

for ((r = 1; r <= REPEAT; r++)); do
    log "run $r/$REPEAT"
    timed cli "$CLI" split "$INPUT" --out "$WORK/out" --max-chunk-bytes "$MAX_CHUNK_BYTES"
    timed baseline python3 tests/bench/baseline_split.py "$INPUT" "$WORK/out" --max-bytes "$MAX_CHUNK_BYTES"
    timed split_b bash -c 'mkdir "$1" && split -b "$2" "$3" "$1/chunk-"' _ "$WORK/out" "$MAX_CHUNK_BYTES" "$INPUT"
    rm -rf "$WORK/out"
    "$FLOOR" "$INPUT" | sed -n 's/.*parse_s=\([0-9.]*\) parse_serialise_s=\([0-9.]*\).*/\1 \2/p' >>"$WORK/parse"
done

median() { sort -g | awk '{ a[NR] = $1 } END { m = int((NR + 1) / 2); if (NR % 2) print a[m]; else printf "%.3f", (a[m] + a[m + 1]) / 2 }'; }
col() { awk -v c="$2" '{ print $c }' "$WORK/$1" | median; }

base_wall="$(col baseline 1)"
echo "### split floor — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(basename "$INPUT"), medians of $REPEAT runs in turns"
echo
echo "| what | wall s | user s | system s |"
echo "|---|---:|---:|---:|"
echo "| CLI split (full validation, 2 cores) | $(col cli 1) | $(col cli 2) | $(col cli 3) |"
echo "| naive baseline | $base_wall | $(col baseline 2) | $(col baseline 3) |"
echo "| \`split -b $MAX_CHUNK_BYTES\` (copy into files only) | $(col split_b 1) | $(col split_b 2) | $(col split_b 3) |"
echo "| sonic-rs, parse each record (1 thread, in memory) | $(col parse 1) | | |"
echo "| sonic-rs, parse and re-serialise each record | $(col parse 2) | | |"
echo
awk -v b="$base_wall" -v c="$(col cli 1)" 'BEGIN { printf "40x the baseline = %.3f s wall; the CLI is at %.1fx\n", b / 40, (c > 0 ? b / c : 0) }'
