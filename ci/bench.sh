#!/usr/bin/env bash
# `make bench` (bash ci/bench.sh) and `make bench-quick` (bash ci/bench.sh --quick).
#
# Full: release build, then bench/run.py runs every case of bench/cases.toml in a fresh
# process BENCH_RUNS times (default 5) and writes BENCHMARKS.md, bench-results/results.json
# and bench-results/chart.png (matplotlib, installed into the repo-local .venv).
# Quick: the rows marked `quick = true`, once each, output under bench-results/tmp/;
# exits 1 when a ratio is more than 2x worse than in the committed results.json (than its
# median, and than every committed run: bench/run.py, `regressed`).
#
# Environment: BENCH_CORE_ROWS=auto|1|0 (default auto: build the core rows when the core
# compiles, skip them otherwise; 1: fail when they do not build; 0: skip them),
# BENCH_RUNS=N, BENCH_ONLY=regex (a subset of case ids), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

quick=0
if [[ "${1:-}" == "--quick" ]]; then
  quick=1
elif [[ $# -gt 0 ]]; then
  echo "usage: ci/bench.sh [--quick]" >&2
  exit 2
fi

target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir" bench-results/tmp
bin_dir="$(cd "$target_dir" && pwd)/release"
core_mode="${BENCH_CORE_ROWS:-auto}"
core_rows=not-built
core_note=""
build_log=bench-results/tmp/core-build.log

step "building the bench binaries (release)"
if [[ "$core_mode" != 0 ]]; then
  set +e
  cargo build --locked --release -p channel-messaging-bench --features core-rows --bins 2>&1 \
    | tee "$build_log" | grep --line-buffered -E '^ +(Compiling|Finished)'
  status=${PIPESTATUS[0]}
  set -e
  if [[ "$status" == 0 ]]; then
    core_rows=built
  elif [[ "$core_mode" == 1 ]]; then
    tail -40 "$build_log"
    echo "BENCH_CORE_ROWS=1 but the core rows do not build (log: $build_log)" >&2
    exit 1
  else
    core_note="the core does not compile against the bench API yet (log: $build_log)"
    echo "core rows: not built: $core_note"
  fi
fi
if [[ "$core_rows" != built ]]; then
  rm -f "$bin_dir/bench-core"
  cargo build --locked --release -p channel-messaging-bench --bins
fi

step "building the C rows' program (bench/c/bench_c.c)"
# Built once here: the C cases run the binary directly, so that no build step runs
# right before a measurement (the core's rows have none either).
CARGO_TARGET_DIR="$target_dir" make --no-print-directory -s bench-c

args=(--bin "$bin_dir" --core-rows "$core_rows" --core-rows-note "$core_note")
if [[ -n "${BENCH_ONLY:-}" ]]; then
  args+=(--only "$BENCH_ONLY")
fi

if [[ "$quick" == 1 ]]; then
  step "quick benchmark subset (1 run each; output in bench-results/tmp/)"
  exec python3 bench/run.py --quick --command "make bench-quick" "${args[@]}"
fi

step "Python environment for the chart (.venv)"
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import matplotlib' 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt \
    || echo "warning: could not install matplotlib; the chart will be skipped"
fi

step "running the benchmarks (${BENCH_RUNS:-5} runs per case)"
exec .venv/bin/python bench/run.py --runs "${BENCH_RUNS:-5}" --command "make bench" "${args[@]}"
