# The C face: the C ABI library (ffi/), its C and C++ tests, the C example, the C
# benchmark, and `make install PREFIX=...` with a pkg-config file.
#
# Targets: c-lib, c-tests (build), c-test (build and run), demo-c, bench-c, install.
# C_PROFILE=debug|release picks the cargo profile the programs link against (debug by
# default; the demo and the benchmark use release). Respects CARGO_TARGET_DIR.

C_PROFILE ?= debug
C_TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
C_LIBDIR = $(abspath $(C_TARGET_DIR))/$(C_PROFILE)
C_OUT = $(abspath $(C_TARGET_DIR))/c-build/$(C_PROFILE)
C_CARGO_FLAGS = $(if $(filter release,$(C_PROFILE)),--release,)
C_CC ?= gcc
C_CXX ?= g++
C_WARN := -Wall -Wextra -Werror
C_CFLAGS = -std=c11 $(C_WARN) -O2 -g -pthread -Iinclude
C_CXXFLAGS = -std=c++17 $(C_WARN) -O2 -g -pthread -Iinclude
C_LINK = -L$(C_LIBDIR) -Wl,-rpath,$(C_LIBDIR) -lchannel_messaging -pthread
C_STATIC = $(C_LIBDIR)/libchannel_messaging.a -pthread -ldl -lm
PREFIX ?= /usr/local

DEMOS += demo-c

.PHONY: c-lib c-tests c-test demo-c bench-c install

c-lib:
	$(CARGO) build --locked -p channel-messaging-ffi $(C_CARGO_FLAGS)

$(C_OUT)/vectors.h: tests/vectors/vectors.json tests/vectors/invalid.json tests/c/gen_vectors.py
	@mkdir -p $(C_OUT)
	python3 tests/c/gen_vectors.py $< $@

c-tests: c-lib $(C_OUT)/vectors.h
	@mkdir -p $(C_OUT)
	$(C_CC) $(C_CFLAGS) -I$(C_OUT) tests/c/test_c.c -o $(C_OUT)/test_c $(C_LINK)
	$(C_CC) $(C_CFLAGS) -I$(C_OUT) tests/c/test_c.c -o $(C_OUT)/test_c_static $(C_STATIC)
	$(C_CXX) $(C_CXXFLAGS) tests/cpp/test_cpp.cpp -o $(C_OUT)/test_cpp $(C_LINK)
	$(C_CC) $(C_CFLAGS) examples/c/worker.c -o $(C_OUT)/worker $(C_LINK)

c-test: c-tests
	$(C_OUT)/test_c
	$(C_OUT)/test_c_static
	$(C_OUT)/test_cpp

demo-c:
	$(MAKE) --no-print-directory c-lib C_PROFILE=release
	@mkdir -p $(abspath $(C_TARGET_DIR))/c-build/release
	$(C_CC) $(C_CFLAGS) examples/c/worker.c -o $(abspath $(C_TARGET_DIR))/c-build/release/worker \
	  -L$(abspath $(C_TARGET_DIR))/release -Wl,-rpath,$(abspath $(C_TARGET_DIR))/release -lchannel_messaging -pthread
	$(abspath $(C_TARGET_DIR))/c-build/release/worker

# The C rows of `make bench` (ci/bench.sh builds this; bench/cases.toml runs the binary).
bench-c:
	$(MAKE) --no-print-directory c-lib C_PROFILE=release
	$(MAKE) --no-print-directory $(abspath $(C_TARGET_DIR))/c-build/release/bench_c

$(abspath $(C_TARGET_DIR))/c-build/release/bench_c: bench/c/bench_c.c include/channel_messaging.h $(abspath $(C_TARGET_DIR))/release/libchannel_messaging.a
	@mkdir -p $(dir $@)
	$(C_CC) -std=c11 $(C_WARN) -O2 -pthread -Iinclude bench/c/bench_c.c -o $@ \
	  $(abspath $(C_TARGET_DIR))/release/libchannel_messaging.a -pthread -ldl -lm

# Installs the library (shared and static), both headers and a pkg-config file:
#   make install PREFIX=$HOME/.local && pkg-config --cflags --libs channel_messaging
# INSTALL_PROFILE=debug installs the debug build (the tests use it to avoid a second build).
INSTALL_PROFILE ?= release
install:
	$(MAKE) --no-print-directory c-lib C_PROFILE=$(INSTALL_PROFILE)
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 $(abspath $(C_TARGET_DIR))/$(INSTALL_PROFILE)/libchannel_messaging.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(abspath $(C_TARGET_DIR))/$(INSTALL_PROFILE)/libchannel_messaging.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/channel_messaging.h include/channel_messaging.hpp $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e "s|@VERSION@|$$(sed -n 's/^#define CM_VERSION "\(.*\)"/\1/p' include/channel_messaging.h)|g" \
	  ffi/channel_messaging.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/channel_messaging.pc
