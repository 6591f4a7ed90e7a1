#!/usr/bin/env bash
# The Node face: build the addon, check that `npm install ./node` gives a working
# package, and run its tests with node's built-in runner (no npm dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."

make --no-print-directory node

# node/ has no dependencies; `npm install` would only create a lockfile there.
# Install the package the way a user does, into a scratch prefix, and use it.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
npm install --silent --no-audit --no-fund --prefix "$scratch" ./node
NODE_PATH="$scratch/node_modules" node -e '
  const { MessageChannel, receiveMessageOnPort, version } = require("channel-messaging");
  const { port1, port2 } = new MessageChannel();
  port1.postMessage({ hello: "npm" });
  if (receiveMessageOnPort(port2).message.hello !== "npm") process.exit(1);
  port1.close();
  console.log(`npm install ./node: channel-messaging ${version} works`);
'

# explicit files: given a directory, node --test would also run node/test/fixtures/*.js
node --test --test-timeout=120000 node/test/*.test.js

# the zero-copy buffers again, made through N-API instead of V8's API (node/src/blocks.rs),
# where a SharedArrayBuffer is a DataCloneError instead of shared (node/src/shared.rs)
CHANNEL_MESSAGING_NAPI_BLOCKS=1 node --test --test-timeout=120000 node/test/buffers.test.js \
  node/test/shared-memory.test.js node/test/differential.test.js node/test/structured-clone.test.js
