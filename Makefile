# The README's commands: `make demo` and `make test`. Everything else is reached from these.
CARGO ?= cargo

.PHONY: demo test bench bench-quick check-header check-versions loom fuzz-smoke clean

demo:
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

clean:
	$(CARGO) clean
	rm -rf .venv node/node_modules
