# linkgraph — the README's two commands are `make demo` and `make test`.
# Everything here installs what it needs and skips what is already there.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
export DEBIAN_FRONTEND ?= noninteractive

.PHONY: demo test lint embedded-only unit bench bench-rank bench-store bench-peers bench-distributed bench-extract bench-frontier bench-frontier-rate fuzz build release check-tools tansu tools k8s-validate clean

## demo: serve a simulated web, crawl it, print a referring-domains report
demo: release
	BIN=target/release/linkgraph ./scripts/demo.sh

## test: formatting, lints, manifests, and the whole test suite (unit, property, end-to-end, Kafka)
test: check-tools tools lint k8s-validate embedded-only unit

# The tools the suite runs: installed once, skipped when present, and a
# failed install stops `make test` (the tests never skip a missing tool).
TANSU_VERSION ?= 0.6.0
# Installs Debian packages, refreshing the package lists once if they are stale.
apt_install = { { apt-get install -y --no-install-recommends $(1) || { apt-get update && apt-get install -y --no-install-recommends $(1); }; } >/dev/null 2>&1 \
  || sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends $(1)' >/dev/null; }
KUBERNETES_VERSION ?= 1.30.0
tansu:
	@command -v tansu >/dev/null || test -x "$$HOME/.cargo/bin/tansu" || { \
	  echo "installing the tansu Kafka broker into ~/.cargo/bin (one time, ~25 min on 2 cores)"; \
	  $(CARGO) install tansu --version $(TANSU_VERSION) --features dynostore --locked; }
tools: tansu
	@command -v promtool >/dev/null || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  $(call apt_install,prometheus) && command -v promtool >/dev/null; } \
	  || { echo "error: promtool is required: apt-get install prometheus"; exit 1; }
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || { \
	  echo "installing chromium and chromium-driver (Debian), for the browser tests"; \
	  $(call apt_install,chromium chromium-driver) && command -v chromium >/dev/null && command -v chromedriver >/dev/null; } \
	  || { echo "error: chromium and chromedriver are required: apt-get install chromium chromium-driver"; exit 1; }
	@python3 -c "import duckdb" 2>/dev/null || { \
	  echo "installing duckdb (PyPI), to read the Parquet export in tests"; \
	  python3 -m pip install --quiet duckdb && python3 -c "import duckdb"; } \
	  || { echo "error: the duckdb Python package is required: python3 -m pip install duckdb"; exit 1; }
	@python3 -c "import networkx, scipy" 2>/dev/null || { \
	  echo "installing networkx and scipy (PyPI), the independent reference for the rank tests"; \
	  python3 -m pip install --quiet networkx scipy && python3 -c "import networkx, scipy"; } \
	  || { echo "error: the networkx and scipy Python packages are required: python3 -m pip install networkx scipy"; exit 1; }
	@command -v kubernetes-validate >/dev/null || { \
	  echo "installing kubernetes-validate (PyPI)"; \
	  python3 -m pip install --quiet kubernetes-validate && command -v kubernetes-validate >/dev/null; } \
	  || { echo "error: kubernetes-validate is required: python3 -m pip install kubernetes-validate"; exit 1; }

## k8s-validate: check the Kubernetes manifests (offline schemas) and the Prometheus rules (and their unit tests)
# Custom resources (ScyllaCluster, ServiceMonitor) have no built-in schema and are skipped.
k8s-validate:
	kubernetes-validate --strict --quiet -k $(KUBERNETES_VERSION) k8s/*.yaml k8s/scylla/store-init-job.yaml
	promtool check rules deploy/prometheus/alerts.yaml
	promtool test rules deploy/prometheus/alerts_test.yaml
	python3 -m json.tool deploy/grafana/linkgraph.json >/dev/null

check-tools:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo is required (https://rustup.rs)"; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "error: rustfmt is required: rustup component add rustfmt"; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "error: clippy is required: rustup component add clippy"; exit 1; }

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## embedded-only: build linkgraph without the kafka and scylla features, and check
## that neither librdkafka nor the Scylla driver is in it
embedded-only:
	$(CARGO) build --locked --no-default-features --bin linkgraph
	@if $(CARGO) tree --locked --no-default-features -e normal --prefix none | grep -qE '^(rdkafka|scylla) '; then \
	  echo "error: the embedded-only build depends on rdkafka or scylla"; exit 1; fi

# The live-ScyllaDB conformance suite is #[ignore]d (no server here); with
# LINKGRAPH_SCYLLA_URI set it runs too.
unit:
	$(CARGO) test --workspace --locked
	@if [ -n "$$LINKGRAPH_SCYLLA_URI" ]; then \
	  $(CARGO) test --locked -p linkgraph-store conformance_suite_on_scylla -- --ignored; fi

## bench: crawl a 100,000-page simulated web in release mode, 3 runs next to a raw-GET baseline each (pages/s, edges/s, peak RSS, median ratio)
bench:
	$(CARGO) bench --locked --bench crawl_e2e

## bench-rank: rank a synthetic domain graph of 1M domains and 20M arcs (time, peak RSS, bits/arc)
bench-rank:
	$(CARGO) run --locked --release -p linkgraph-rank --example bench_rank

## bench-store: ingest 10M edges of realistic shape into the embedded store (edges/s, peak RSS)
bench-store:
	$(CARGO) bench --locked -p linkgraph-store --bench ingest

## bench-peers: linkgraph vs wget2 on a static 1,000-host web served by nginx (pages/s from nginx's log)
bench-peers:
	@command -v nginx >/dev/null && command -v wget2 >/dev/null || { \
	  echo "installing nginx-light and wget2 (Debian)"; \
	  $(call apt_install,nginx-light wget2); }
	@command -v nginx >/dev/null && command -v wget2 >/dev/null || { echo "error: nginx and wget2 are required"; exit 1; }
	-@service nginx stop >/dev/null 2>&1
	$(CARGO) bench --locked --bench peers

## bench-distributed: the services over tansu (1 frontier, 1 then 2 fetchers, 1 parser) vs the embedded crawl, on the bench-peers web (pages/s, CPU s per 1,000 pages per process); then 1 vs 2 fetchers where fetches are slow (fetch-bound)
bench-distributed: tansu
	@command -v nginx >/dev/null || { \
	  echo "installing nginx-light (Debian)"; \
	  $(call apt_install,nginx-light); }
	@command -v nginx >/dev/null || { echo "error: nginx is required"; exit 1; }
	-@service nginx stop >/dev/null 2>&1
	$(CARGO) bench --locked --bench distributed

## bench-extract: link extraction MB/s per core on the page corpus, next to a bare lol_html scan
bench-extract:
	$(CARGO) bench --locked -p linkgraph-parser --bench extract

## bench-frontier-rate: the frontier alone crawls the bench-peers web (1,000 hosts x 100 pages, ~29 links each): pages/s and CPU s per 1,000 pages, median of 3
bench-frontier-rate:
	$(CARGO) bench --locked --bench frontier_rate

## bench-frontier: frontier RAM per known URL at 1M and 10M URLs, and peak RSS draining it
bench-frontier:
	$(CARGO) bench --locked --bench frontier_mem
	LINKGRAPH_BENCH_URLS=10000000 LINKGRAPH_BENCH_HOSTS=100000 $(CARGO) bench --locked --bench frontier_mem

## fuzz: run every cargo-fuzz target for FUZZ_SECONDS (default 120) each
FUZZ_SECONDS ?= 120
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in robots canonicalize extract_links page_path; do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

build:
	$(CARGO) build --workspace --locked

release:
	$(CARGO) build --release --locked --bin linkgraph

clean:
	$(CARGO) clean
