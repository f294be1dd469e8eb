#!/usr/bin/env bash
# Makespan benchmark: the pipeline (moto + the Auth0 emulator, jobs of a fixed time) against the
# slot-bound optimum. Appends a Markdown table, and the runs' breakdowns, to bench-data/results.md.
# Usage: bash tests/bench/makespan.sh [--configs "CHUNKSxJOB_MS[@TICK_MS] ..."] [--slots K]
set -euo pipefail

CONFIGS="20x1000 11x500"
SLOTS=2

usage() {
    cat <<'EOF'
Usage: bash tests/bench/makespan.sh [--configs "20x1000 11x500"] [--slots 2]

  --configs "C..."  runs as CHUNKSxJOB_MS, optionally @TICK_MS (schedule period, default 20);
                    default "20x1000 11x500"
  --slots K         job slots (the emulator allows as many jobs at once); default 2

Environment:
  BENCH_DIR       where results.md lives (default bench-data/)
  MAKESPAN_BIN    use this binary instead of building target/release/makespan
  PYTHON          the Python with moto[server] (default python3)
EOF
}

die() { echo "makespan: error: $*" >&2; exit 1; }
log() { echo "makespan: $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --configs) [[ $# -ge 2 ]] || die "--configs needs a value"; CONFIGS="$2"; shift 2 ;;
        --configs=*) CONFIGS="${1#*=}"; shift ;;
        --slots) [[ $# -ge 2 ]] || die "--slots needs a value"; SLOTS="$2"; shift 2 ;;
        --slots=*) SLOTS="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ "$SLOTS" =~ ^[1-9][0-9]*$ ]] || die "--slots must be a positive integer, got '$SLOTS'"
read -r -a CONFIG_LIST <<<"$CONFIGS"
[[ ${#CONFIG_LIST[@]} -gt 0 ]] || die "--configs is empty"
for c in "${CONFIG_LIST[@]}"; do
    [[ "$c" =~ ^[1-9][0-9]*x[1-9][0-9]*(@[0-9]+)?$ ]] || die "bad config '$c' (expected e.g. 20x1000 or 20x1000@20)"
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BENCH_DIR="${BENCH_DIR:-bench-data}"
BENCH_DIR="${BENCH_DIR%/}"
"${PYTHON:-python3}" -c 'import moto.server' 2>/dev/null \
    || die "moto's server is not importable (pip install 'moto[server]')"

if [[ -n "${MAKESPAN_BIN:-}" ]]; then
    BIN="$MAKESPAN_BIN"
else
    log "building target/release/makespan"
    cargo build --release --quiet -p integration --bin makespan
    BIN=target/release/makespan
fi
[[ -x "$BIN" ]] || die "$BIN is not executable"

mkdir -p "$BENCH_DIR"
RESULTS="$BENCH_DIR/results.md"
DETAILS="$(mktemp)"
ROWS="$(mktemp)"
RUN_LOG="$(mktemp)"
trap 'rm -f "$DETAILS" "$ROWS" "$RUN_LOG"' EXIT

first=1
for c in "${CONFIG_LIST[@]}"; do
    spec="${c%@*}"
    tick=20
    [[ "$c" == *@* ]] && tick="${c#*@}"
    chunks="${spec%x*}"
    job_ms="${spec#*x}"
    args=(--chunks "$chunks" --job-ms "$job_ms" --slots "$SLOTS" --tick-ms "$tick" --phases)
    [[ $first -eq 1 ]] && args+=(--header)
    first=0
    log "run: ${args[*]}"
    echo "\$ makespan ${args[*]}" >>"$DETAILS"
    "$BIN" "${args[@]}" >>"$ROWS" 2>"$RUN_LOG" || { cat "$RUN_LOG" >&2; die "makespan ${args[*]} failed"; }
    cat "$RUN_LOG" >&2
    cat "$RUN_LOG" >>"$DETAILS"
done

{
    echo
    echo "## Makespan vs slot-bound optimum — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "Emulator job time fixed (job_base_time = job ms, job_time_per_user = 0); optimum = ⌈chunks/slots⌉ × job ms."
    echo
    cat "$ROWS"
    echo
    echo '```'
    cat "$DETAILS"
    echo '```'
} >>"$RESULTS"
cat "$ROWS"
log "appended to $RESULTS"
