# keyward: the two commands a newcomer needs are `make dev` and `make test`.
# Every target installs what it needs first (scripts/setup.sh is idempotent).

.PHONY: setup build dev test unit lint e2e dashboard-test screenshots api-test fuzz bench scale geo unicode-tables deploy deploy-check

setup:
	@bash scripts/setup.sh

build: setup
	@bash scripts/build.sh

# Starts the example origin and `wrangler dev` with local KV and Durable Objects
# persisted under .wrangler/state; prints how to create a first key.
dev: build
	@bash scripts/dev.sh

# Every test: formatting and lints, host unit and property tests, end-to-end tests
# that start `wrangler dev` and speak HTTP to it, the dashboard in a browser, then
# schemathesis against the served OpenAPI document.
test: setup lint unit build deploy-check e2e dashboard-test api-test

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -- -D warnings

# Unit tests and the property tests of every request-path parser (2,000 cases each).
unit:
	cargo test

# The property tests at 1,000,000 generated inputs each (about 3 minutes).
fuzz:
	PROPTEST_CASES=1000000 cargo test --release --test properties

# Two phases: the files whose assertions do not depend on timing run two at a time;
# those that measure leases, lingering settlements, crashes, simulated round trips or
# restarts run one at a time afterwards, on a quiet machine. A new file goes in the
# serial list only if it times something; every other file is in the parallel one.
E2E_SERIAL = account_leases accounting budget_leases coalescing geography leases persistence placement
E2E_ALL = $(sort $(basename $(basename $(notdir $(wildcard tests/e2e/*.test.mjs)))))
E2E_PARALLEL = $(filter-out $(E2E_SERIAL),$(E2E_ALL))
e2e:
	@for f in $(E2E_SERIAL); do [ -f tests/e2e/$$f.test.mjs ] || { echo "E2E_SERIAL names a missing file: $$f"; exit 1; }; done
	WRANGLER_SEND_METRICS=false node --test --test-concurrency=2 $(patsubst %,tests/e2e/%.test.mjs,$(E2E_PARALLEL))
	WRANGLER_SEND_METRICS=false node --test --test-concurrency=1 $(patsubst %,tests/e2e/%.test.mjs,$(E2E_SERIAL))

# The dashboard in Chromium (Debian's, installed by setup.sh --browser) driven by
# playwright-core, against wrangler dev (its screenshots go to a temporary folder).
dashboard-test: build
	@bash scripts/setup.sh --browser
	WRANGLER_SEND_METRICS=false node --test --test-concurrency=1 dashboard/tests/

# The dashboard tests, writing the README's screenshots into docs/.
screenshots: build
	@bash scripts/setup.sh --browser
	SCREENSHOTS_DIR=docs WRANGLER_SEND_METRICS=false node --test --test-concurrency=1 dashboard/tests/

# schemathesis (PyPI, pinned, in .venv) against the served OpenAPI document under
# `wrangler dev`: every check, a fixed seed, 100 examples per operation (over 2,000
# cases). ST_ARGS overrides, e.g. make api-test ST_ARGS="--max-examples 500".
ST_ARGS ?= --max-examples 100 --seed 7 --generation-database none
api-test: build
	@bash scripts/setup-api-test.sh
	WRANGLER_SEND_METRICS=false node tests/api/schemathesis.mjs $(ST_ARGS)

# Speed and size: wrk against the release worker under wrangler dev, six scenarios,
# medians of 3 rounds, plus the host micro-benchmark; writes BENCHMARKS.md.
bench: build
	WRANGLER_SEND_METRICS=false node bench/run.mjs

# No hot object at any scale: 1,000 accounts × 20 keys and one account of 2,000
# through the API, mixed traffic, a plan change; prints every object class's share
# of the calls from the objects' own counters (OBJECT_STATS). About 15 minutes;
# writes bench/SCALE.md and its section of BENCHMARKS.md. Not part of `make test`.
scale: build
	WRANGLER_SEND_METRICS=false node bench/scale.mjs

# Geography, simulated (TEST_GEO): per client region, the latency keyward adds over
# the bare forwarder for a key created far from its clients, a key and an account
# used from three regions, a revocation's effect everywhere, and object calls per
# request. About 2 minutes; writes bench/GEO.md and its section of BENCHMARKS.md.
geo: build
	WRANGLER_SEND_METRICS=false node bench/geo.mjs

# Regenerates src/unicode_tables.rs (the path and name tables of the Security model)
# from the Unicode Character Database: Debian's unicode-data package, installed
# with apt-get when missing. The output is committed; nothing else needs the package.
unicode-tables:
	@[ -f /usr/share/unicode/UnicodeData.txt ] || { sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; $$sudo apt-get update -qq && $$sudo apt-get install -y -qq unicode-data; }
	python3 scripts/unicode-tables.py src/request/unicode_tables.rs
	cargo fmt

# Deploys the production environment of wrangler.toml (README, "Deploying").
deploy: build
	@bash scripts/deploy.sh

# The production deployment bundled and checked without uploading (part of make test).
deploy-check: build
	@bash scripts/deploy.sh --dry-run
