#!/usr/bin/env bash
# make bench-reconcile: an export of a USERS-user connection (default 1,000,000) on the emulator,
# read back the way reconcile reads it: export size, time, and the reader's peak memory (the
# emulator runs as its own process, so its tenant is not counted).
set -euo pipefail
USERS=${USERS:-1000000}
PROFILE=${PROFILE:-release}
cargo build --quiet --profile "$PROFILE" -p auth0-emulator -p integration --bin auth0-emulator --bin bench_reconcile
dir=target/$PROFILE
[ "$PROFILE" = dev ] && dir=target/debug
log=$(mktemp)
"$dir/auth0-emulator" --seed-users "$USERS" >"$log" &
emulator=$!
trap 'kill $emulator 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 600); do grep -q 'listening on' "$log" && break; sleep 1; done
base=$(sed -n 's/^listening on //p' "$log")
echo "emulator at $base with $USERS users"
/usr/bin/time -v "$dir/bench_reconcile" "$base" "$USERS" 2> >(grep -E 'Maximum resident|Elapsed' >&2)
