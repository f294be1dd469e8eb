#!/usr/bin/env bash
# make bench-split-1cpu: the split Lambda's handler on one core (`taskset -c 0`, what the
# template's 1,769 MB buys in Lambda: one vCPU) reading a drop from moto, which runs on the
# other core as S3 would run elsewhere. FILE defaults to a generated SPLIT_USERS-user JSON array
# (default 2,000,000) under bench-data/. Prints the handler's wall time and the drop's size;
# the 10 M-user figure is this scaled by size (split streams: time grows with bytes).
set -euo pipefail
USERS=${SPLIT_USERS:-2000000}
FILE=${1:-bench-data/users-$USERS.json}
PY=${PYTHON:-.venv/bin/python}
if [ ! -f "$FILE" ]; then
  mkdir -p "$(dirname "$FILE")"
  python3 tests/data/gen_export.py --users "$USERS" --seed 1 --format json --out "$FILE"
fi
cargo build --quiet --release -p integration --bin split_s3
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 1 "$PY" -m moto.server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
echo "drop: $FILE ($(stat -c %s "$FILE") bytes); split on core 0, moto on core 1"
/usr/bin/time -v taskset -c 0 target/release/split_s3 "$FILE" --endpoint "http://127.0.0.1:$port" \
  2> >(grep -E 'Maximum resident|Elapsed|User time|System time' >&2) | tail -3
