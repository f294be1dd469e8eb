#!/usr/bin/env bash
# make bench-scale (issue 21): poll's finalisation of one SCALE_USERS-user run (default 10,000,000)
# on moto + the Auth0 emulator, invocation by invocation until the run is final: wall time, peak
# RSS, /tmp, S3 requests by type, Auth0 requests, and a check of the reports against the seed.
# SCALE_ARGS passes more flags to `bench_scale run` (--reject-rate, --fail-rate, --deadline-s,
# --no-kill). The full output is kept in bench-data/scale-<users>.md.
set -euo pipefail
SCALE_USERS=${SCALE_USERS:-10000000}
PROFILE=${PROFILE:-release}
dir=target/$PROFILE
[ "$PROFILE" = dev ] && dir=target/debug
nice -n 10 cargo build --quiet --profile "$PROFILE" -p integration --bin bench_scale
mkdir -p bench-data
out=bench-data/scale-$SCALE_USERS.md
# shellcheck disable=SC2086 # SCALE_ARGS is a list of flags
"$dir/bench_scale" run --users "$SCALE_USERS" ${SCALE_ARGS:-} | tee "$out"
echo "written to $out" >&2
