#!/usr/bin/env bash
# Fuzzes the message decoder (fuzz/fuzz_targets/decode.rs) with libFuzzer, without
# needing cargo-fuzz: the same instrumentation flags, a nightly toolchain, and the golden
# vectors (tests/vectors, the invalid ones too) as the seed corpus. Not part of `make test`.
#
#   make fuzz                      # 5 minutes
#   FUZZ_SECONDS=3600 make fuzz    # longer
#
# The corpus grows in target/fuzz-corpus (kept between runs); a crashing input is written
# to target/fuzz-artifacts/ and the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-300}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "make fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
target_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
# (--target keeps these flags off build scripts, as cargo-fuzz does)
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
CARGO_TARGET_DIR="$target_dir/fuzz" \
  cargo +nightly build --locked --release --manifest-path fuzz/Cargo.toml --bin decode --target "$triple"
corpus="$target_dir/fuzz-corpus"
artifacts="$target_dir/fuzz-artifacts"
mkdir -p "$corpus" "$artifacts"
cp -n tests/vectors/*.cbor "$corpus/"
# and the invalid vectors: inputs just past the edge of the format
python3 - "$corpus" <<'PY'
import json, pathlib, sys
corpus = pathlib.Path(sys.argv[1])
for v in json.loads(pathlib.Path("tests/vectors/invalid.json").read_text())["invalid"]:
    seed = corpus / f"invalid_{v['name']}"
    if not seed.exists():
        seed.write_bytes(bytes.fromhex(v["hex"]))
PY
"$target_dir/fuzz/$triple/release/decode" "$corpus" -max_total_time="$seconds" -max_len=4096 \
  -rss_limit_mb=4096 -artifact_prefix="$artifacts/" -print_final_stats=1
