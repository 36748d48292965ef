# keyward: the two commands a newcomer needs are `make dev` and `make test`.
# Every target installs what it needs first (scripts/setup.sh is idempotent).

.PHONY: setup build dev test unit lint e2e bench

setup:
	@bash scripts/setup.sh

build: setup
	@bash scripts/build.sh

# Starts the example origin and `wrangler dev` with local KV and Durable Objects
# persisted under .wrangler/state; prints how to create a first key.
dev: build
	@bash scripts/dev.sh

# Every test: formatting and lints, host unit tests, then end-to-end tests that start
# `wrangler dev` and speak HTTP to it.
test: setup lint unit build e2e

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -- -D warnings

unit:
	cargo test

e2e:
	WRANGLER_SEND_METRICS=false node --test --test-concurrency=1 tests/e2e/

# Speed and size: wrk against the release worker under wrangler dev, six scenarios,
# medians of 3 rounds, plus the host micro-benchmark; writes BENCHMARKS.md.
bench: build
	WRANGLER_SEND_METRICS=false node bench/run.mjs
