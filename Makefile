# The README's commands: `make demo` and `make test`. Everything else is reached from these.
#
# Each face adds its own targets in mk/<face>.mk (included below): its build, its demo
# (appended to DEMOS) and whatever its tests need. `make test` runs ci/test.sh, which runs
# the Rust checks and then every ci/test-<face>.sh.
CARGO ?= cargo
DEMOS := demo-rust

.PHONY: demo demo-rust test bench bench-quick check-header check-versions loom fuzz clean

-include mk/*.mk

demo: $(DEMOS)

demo-rust:
	$(CARGO) run --locked --release -p channel-messaging --example worker_pool

test:
	bash ci/test.sh

bench:
	bash ci/bench.sh

bench-quick:
	bash ci/bench.sh --quick

check-header:
	bash ci/header.sh

check-versions:
	bash ci/versions.sh

loom:
	bash ci/loom.sh

fuzz:
	bash ci/fuzz.sh

clean:
	$(CARGO) clean
	rm -rf .venv node/node_modules
