#!/usr/bin/env bash
# Benchmark `auth0-s3-import split` against the naive Python splitter (tests/bench/README.md).
# Usage: bash tests/bench/run_bench.sh [--sizes "100M 1G"] [--repeat N]
set -euo pipefail

SIZES="100M 1G"
REPEAT=1
SEED=42
MAX_CHUNK_BYTES=500000

usage() {
    cat <<'EOF'
Usage: bash tests/bench/run_bench.sh [--sizes "100M 1G"] [--repeat N]

  --sizes "S..."  input sizes to generate and split (K/M/G = KiB/MiB/GiB); default "100M 1G"
  --repeat N      run each measurement N times; wall = median, RSS = max; default 1

Environment:
  BENCH_DIR   where generated inputs, run outputs and results.md live (default bench-data/)
  BENCH_CLI   use this binary instead of building target/release/auth0-s3-import
EOF
}

die() { echo "run_bench: error: $*" >&2; exit 1; }
log() { echo "run_bench: $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --sizes) [[ $# -ge 2 ]] || die "--sizes needs a value"; SIZES="$2"; shift 2 ;;
        --sizes=*) SIZES="${1#*=}"; shift ;;
        --repeat) [[ $# -ge 2 ]] || die "--repeat needs a value"; REPEAT="$2"; shift 2 ;;
        --repeat=*) REPEAT="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer, got '$REPEAT'"
read -r -a SIZE_LIST <<<"$SIZES"
[[ ${#SIZE_LIST[@]} -gt 0 ]] || die "--sizes is empty"
for s in "${SIZE_LIST[@]}"; do
    [[ "$s" =~ ^[0-9]+[KMG]?$ ]] || die "bad size '$s' (expected e.g. 100M, 1G)"
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
GEN=tests/data/gen_export.py
BASELINE=tests/bench/baseline_split.py
BENCH_DIR="${BENCH_DIR:-bench-data}"
BENCH_DIR="${BENCH_DIR%/}"

TIME_BIN=/usr/bin/time
[[ -x "$TIME_BIN" ]] || die "$TIME_BIN not found; install GNU time (apt-get install time)"
"$TIME_BIN" -v true >/dev/null 2>&1 || die "$TIME_BIN does not support -v (GNU time required)"
command -v python3 >/dev/null || die "python3 not found"
[[ -f "$GEN" && -f "$BASELINE" ]] || die "run from the repository (missing $GEN or $BASELINE)"

mkdir -p "$BENCH_DIR"
WORK="$(mktemp -d "$BENCH_DIR/run.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --- the CLI under test --------------------------------------------------------------------------
if [[ -n "${BENCH_CLI:-}" ]]; then
    CLI="$BENCH_CLI"
    log "using BENCH_CLI=$CLI (no build)"
else
    command -v cargo >/dev/null || die "cargo not found (needed to build the CLI)"
    log "building: cargo build --release -p auth0-s3-import (a clean release build takes ~6-7 min)"
    cargo build --release -p auth0-s3-import >&2 \
        || die "release build of auth0-s3-import failed; fix the build (or set BENCH_CLI) and retry"
    CLI=target/release/auth0-s3-import
fi
[[ -x "$CLI" ]] || die "CLI binary '$CLI' not found or not executable; the benchmark needs \`auth0-s3-import split <FILE> --out <DIR> --max-chunk-bytes N\`"

# --- helpers -------------------------------------------------------------------------------------
# Elapsed "h:mm:ss" or "m:ss.ss" -> seconds
to_seconds() { awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }' <<<"$1"; }

# measure LABEL OUTDIR CMD... : runs CMD under GNU time; sets M_WALL (s), M_RSS_KB, M_STDOUT (file)
measure() {
    local label="$1" outdir="$2"; shift 2
    local tf="$WORK/time.txt" so="$WORK/$label.stdout" se="$WORK/$label.stderr"
    rm -rf "$outdir"
    if ! "$TIME_BIN" -v -o "$tf" "$@" >"$so" 2>"$se"; then
        echo "---- $label stderr (last 20 lines) ----" >&2
        tail -n 20 "$se" >&2 || true
        die "$label failed: $(head -n 1 "$tf" 2>/dev/null): $*"
    fi
    M_WALL="$(to_seconds "$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$tf")")"
    M_RSS_KB="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tf")"
    [[ -n "$M_WALL" && -n "$M_RSS_KB" ]] || die "could not parse $TIME_BIN output for $label"
    M_STDOUT="$so"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { m = int((NR + 1) / 2); if (NR % 2) print a[m]; else printf "%.2f", (a[m] + a[m + 1]) / 2 }'; }
max() { printf '%s\n' "$@" | sort -g | tail -n 1; }

# manifest_stats FILE -> "users_in chunks mean_fill max_chunk_bytes users_in_chunks rejected codes"
manifest_stats() {
    python3 - "$1" "$MAX_CHUNK_BYTES" <<'PY'
import json, sys
m = json.load(open(sys.argv[1], encoding="utf-8"))
limit = int(sys.argv[2])
chunks = m["chunks"]
sizes = [c["bytes"] for c in chunks]
fill = (sum(sizes) / len(sizes) / limit) if sizes else 0.0
codes = ",".join("%s=%s" % kv for kv in sorted((m.get("rejects_by_code") or {}).items())) or "-"
print(m["users_in"], len(chunks), "%.3f" % fill, max(sizes, default=0), sum(c["users"] for c in chunks),
      m.get("users_rejected", 0), codes)
PY
}

GEN_SHA="$(sha256sum "$GEN" | cut -c1-16)"

# ensure_input SIZE -> sets INPUT and RECORDS; regenerates unless a file with the same
# size, seed and generator version is already there.
ensure_input() {
    local size="$1"
    INPUT="$BENCH_DIR/export-$size-seed$SEED.json"
    local meta="$INPUT.meta"
    local want="size=$size seed=$SEED format=json invalid_rate=0 gen=$GEN_SHA"
    if [[ -f "$INPUT" && -f "$meta" && "$(head -n 1 "$meta")" == "$want" ]]; then
        log "reusing $INPUT"
    else
        log "generating $INPUT"
        rm -f "$INPUT" "$meta"
        python3 "$GEN" --bytes "$size" --seed "$SEED" --format json --invalid-rate 0 \
            --out "$INPUT.tmp" 2>"$WORK/gen.log" || { cat "$WORK/gen.log" >&2; die "generator failed"; }
        cat "$WORK/gen.log" >&2
        mv "$INPUT.tmp" "$INPUT"
        { echo "$want"; cat "$WORK/gen.log"; } >"$meta"
    fi
    RECORDS="$(sed -n 's/.*records=\([0-9]*\).*/\1/p' "$meta" | head -n 1)"
}

# --- run -----------------------------------------------------------------------------------------
ROWS=()
NOTES=()
for size in "${SIZE_LIST[@]}"; do
    ensure_input "$size"
    bytes="$(stat -c %s "$INPUT")"
    mib="$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')"

    cli_walls=(); cli_rss=(); base_walls=(); base_rss=()
    for ((r = 1; r <= REPEAT; r++)); do
        cat "$INPUT" >/dev/null  # same warm page cache for both tools
        log "[$size run $r/$REPEAT] CLI split"
        measure cli "$WORK/out-cli" "$CLI" split "$INPUT" --out "$WORK/out-cli" --max-chunk-bytes "$MAX_CHUNK_BYTES"
        cli_walls+=("$M_WALL"); cli_rss+=("$M_RSS_KB")
        [[ -f "$WORK/out-cli/manifest.json" ]] || die "CLI run succeeded but wrote no $WORK/out-cli/manifest.json"
        stats="$(manifest_stats "$WORK/out-cli/manifest.json")" \
            || die "could not read users_in/chunks from $WORK/out-cli/manifest.json"
        read -r users_in n_chunks fill max_chunk chunk_users rejected codes <<<"$stats"
        rm -rf "$WORK/out-cli"

        cat "$INPUT" >/dev/null
        log "[$size run $r/$REPEAT] baseline split"
        measure baseline "$WORK/out-base" python3 "$BASELINE" "$INPUT" "$WORK/out-base" --max-bytes "$MAX_CHUNK_BYTES"
        base_walls+=("$M_WALL"); base_rss+=("$M_RSS_KB")
        base_chunks="$(sed -n 's/.*chunks=\([0-9]*\).*/\1/p' "$M_STDOUT")"
        rm -rf "$WORK/out-base"
    done

    cw="$(median "${cli_walls[@]}")"; bw="$(median "${base_walls[@]}")"
    crss="$(max "${cli_rss[@]}")"; brss="$(max "${base_rss[@]}")"
    ROWS+=("$(awk -v size="$size" -v rec="$RECORDS" -v mib="$mib" -v cw="$cw" -v bw="$bw" \
        -v crss="$crss" -v brss="$brss" -v ch="$n_chunks" -v bch="$base_chunks" -v fill="$fill" 'BEGIN {
        cs = (cw > 0) ? sprintf("%.1f", mib / cw) : "inf"; bs = (bw > 0) ? sprintf("%.1f", mib / bw) : "inf"
        ratio = (cw > 0) ? sprintf("%.1fx", bw / cw) : "n/a"
        printf "| %s | %d | %.2f | %s | %.0f | %.2f | %s | %.0f | %s | %s | %s | %s |", size, rec, cw, cs,
            crss / 1024, bw, bs, brss / 1024, ratio, ch, bch, fill }')")
    [[ "$users_in" == "$RECORDS" ]] || NOTES+=("$size: CLI users_in=$users_in but the generator wrote $RECORDS records")
    [[ "$rejected" == "0" ]] \
        || NOTES+=("$size: CLI rejected $rejected generated records that should all be valid ($codes)")
    [[ "$chunk_users" == "$RECORDS" ]] || NOTES+=("$size: CLI chunks hold $chunk_users users, expected $RECORDS")
    (( max_chunk <= MAX_CHUNK_BYTES )) || NOTES+=("$size: largest CLI chunk is $max_chunk bytes > $MAX_CHUNK_BYTES")
done

# --- report --------------------------------------------------------------------------------------
commit="$(git rev-parse --short HEAD 2>/dev/null || echo "none (no commits yet)")"
[[ -z "$(git status --porcelain 2>/dev/null | grep -v '^??' || true)" ]] || commit="$commit (+uncommitted changes)"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
mem="$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
report="$WORK/report.md"
{
    echo "### auth0-s3-import split benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $mem RAM; $(uname -sr)"
    echo "- commit: $commit; $("$CLI" --version 2>/dev/null || echo "auth0-s3-import (version unknown)")"
    echo "- input: gen_export.py --format json --seed $SEED --invalid-rate 0; max chunk $MAX_CHUNK_BYTES bytes; runs per cell: $REPEAT (wall = median, RSS = max)"
    echo
    echo "| size | records | CLI wall s | CLI MiB/s | CLI peak RSS MiB | baseline wall s | baseline MiB/s | baseline peak RSS MiB | speed ratio | chunks | baseline chunks | mean fill |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
    for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo; echo "**warning:** $n"; done
    echo
} >"$report"
cat "$report"
cat "$report" >>"$BENCH_DIR/results.md"
log "appended to $BENCH_DIR/results.md"
