#!/usr/bin/env bash
# Runs the C API rows' program by hand: builds bench/c/bench_c.c against the release static
# library (make bench-c; a no-op when up to date) and runs it. (`make bench` builds it once
# in ci/bench.sh and bench/cases.toml runs the binary directly.)
#   bench/c/run.sh <dir of the release binaries> <w1|w2|w3b> <n>
set -euo pipefail
cd "$(dirname "$0")/../.."
bin_dir=$1
shift
target_dir=$(dirname "$bin_dir")
CARGO_TARGET_DIR="$target_dir" make --no-print-directory -s bench-c >&2
exec "$target_dir/c-build/release/bench_c" "$@"
