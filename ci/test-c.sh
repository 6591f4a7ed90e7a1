#!/usr/bin/env bash
# The C face (`make test` runs it): builds the C ABI library, checks the header and the
# exported symbols, builds and runs the C and C++ tests (shared and static), runs them
# again under valgrind, runs the C example, and checks `make install` + pkg-config.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf -- '-- %s\n' "$*"; }
target_dir="${CARGO_TARGET_DIR:-target}"
out="$(cd "$target_dir" 2>/dev/null && pwd || echo "$PWD/$target_dir")/c-build/debug"
lib="$(dirname "$out")/../debug/libchannel_messaging.so"

step "build the library, the C/C++ tests and the example"
make --no-print-directory -s c-tests

step "the header compiles as strict C and C++"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include "channel_messaging.h"\nint main(void) { return cm_abi_version() == CM_ABI_VERSION ? 0 : 1; }\n' > "$tmp/h.c"
cp "$tmp/h.c" "$tmp/h.cpp"
gcc -std=c11 -pedantic -Wall -Wextra -Werror -Iinclude -c "$tmp/h.c" -o "$tmp/h.o"
gcc -std=c99 -pedantic -Wall -Wextra -Werror -Iinclude -c "$tmp/h.c" -o "$tmp/h99.o"
g++ -std=c++17 -pedantic -Wall -Wextra -Werror -Iinclude -c "$tmp/h.cpp" -o "$tmp/hpp.o"
printf '#include "channel_messaging.hpp"\nint main() { return 0; }\n' > "$tmp/w.cpp"
g++ -std=c++17 -pedantic -Wall -Wextra -Werror -Iinclude -c "$tmp/w.cpp" -o "$tmp/w.o"

step "the shared library exports only cm_* symbols"
others=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^cm_' || true)
if [[ -n "$others" ]]; then
  echo "non-cm_ symbols exported:" >&2
  echo "$others" >&2
  exit 1
fi
echo "$(nm -D --defined-only "$lib" | grep -c ' cm_') cm_* symbols, nothing else"

step "the C example"
"$out/worker"

step "make install + pkg-config"
make --no-print-directory -s install PREFIX="$tmp/prefix" INSTALL_PROFILE=debug >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
[[ "$(pkg-config --modversion channel_messaging)" == "$(sed -n 's/^#define CM_VERSION "\(.*\)"/\1/p' include/channel_messaging.h)" ]]
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror examples/c/worker.c -o "$tmp/worker" \
  $(pkg-config --cflags --libs channel_messaging) -pthread -Wl,-rpath,"$tmp/prefix/lib"
"$tmp/worker" > /dev/null
echo "installed under a prefix, found by pkg-config, example built and run against it"

# Every test program prints "N passed, M failed" last and exits non-zero on a failure.
log="$tmp/tests.log"
run() {
  step "$1"
  shift
  "$@" | tee -a "$log"
}
vg=(valgrind --error-exitcode=1 --leak-check=full --quiet --suppressions=tests/c/valgrind.supp)
run "C tests (shared library)" "$out/test_c"
run "C tests (static library)" "$out/test_c_static"
run "C++ tests" "$out/test_cpp"
run "C tests under valgrind" "${vg[@]}" "$out/test_c"
run "C++ tests under valgrind" "${vg[@]}" "$out/test_cpp"
awk '/ passed, [0-9]+ failed$/ { p += $1; f += $3 } END { printf "C face: %d passed, %d failed\n", p, f; exit f > 0 }' "$log"
