#!/usr/bin/env bash
# Everything `make test` runs. Each step prints a banner so a failure is easy to place.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "formatting"
cargo fmt --all --check

step "versions"
bash ci/versions.sh

step "C header"
bash ci/header.sh

step "clippy"
cargo clippy --locked --workspace --all-targets --quiet -- -D warnings

step "rust tests"
cargo test --locked --quiet

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps -p channel-messaging --quiet

step "bench harness (the quick check's rule)"
python3 -m unittest discover --start-directory bench/tests --quiet

step "loom models"
bash ci/loom.sh

# The faces: ci/test-c.sh, ci/test-node.sh, ci/test-python.sh, ... each builds what it
# needs and runs its own tests.
for face_tests in ci/test-*.sh; do
  [[ -e "$face_tests" ]] || continue
  step "$(basename "$face_tests" .sh)"
  bash "$face_tests"
done

step "all tests passed"
