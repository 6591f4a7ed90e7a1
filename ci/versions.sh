#!/usr/bin/env bash
# Fails when the version in Cargo.toml, python/pyproject.toml, node/package.json and the
# generated C header disagree.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_v=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
py_v=$(sed -n 's/^version = "\(.*\)"/\1/p' python/pyproject.toml | head -n1)
node_v=$(sed -n 's/^ *"version": "\(.*\)",*/\1/p' node/package.json | head -n1)
h_v=$(sed -n 's/^#define CM_VERSION "\(.*\)"/\1/p' include/channel_messaging.h)

status=0
for pair in "python/pyproject.toml:$py_v" "node/package.json:$node_v" "include/channel_messaging.h:$h_v"; do
  file=${pair%%:*}; v=${pair#*:}
  if [[ "$v" != "$cargo_v" ]]; then
    echo "version mismatch: Cargo.toml has $cargo_v, $file has ${v:-nothing}" >&2
    status=1
  fi
done
[[ $status -eq 0 ]] && echo "versions agree: $cargo_v"
exit $status
