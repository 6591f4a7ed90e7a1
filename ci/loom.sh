#!/usr/bin/env bash
# Model-checks the port layer's races (post / recv / close / transfer) with loom.
# A bounded preemption count keeps the run short; raise LOOM_MAX_PREEMPTIONS to dig deeper.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
cargo test --locked --release -p channel-messaging --test loom --quiet
