#!/usr/bin/env bash
# Fails when include/channel_messaging.h differs from what ffi/build.rs generates.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p channel-messaging-ffi --quiet
if ! git diff --quiet -- include/channel_messaging.h; then
  echo "include/channel_messaging.h is stale: commit the regenerated header" >&2
  git --no-pager diff --stat -- include/channel_messaging.h >&2
  exit 1
fi
if [[ -n "$(git ls-files --others --exclude-standard include/)" ]]; then
  echo "include/ has generated files that are not committed" >&2
  exit 1
fi
echo "header up to date"
