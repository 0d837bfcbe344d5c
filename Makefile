# trusswork — the two commands of the README are `make demo` and `make test`.
# Every target sets up .venv itself (Python, a C compiler and make suffice).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
EXTRAS := test,bench,docs,redis,postgres,http,dev
STAMP := $(VENV)/.installed-$(EXTRAS)
SOURCES := CMakeLists.txt pyproject.toml $(shell find csrc src -name '*.c' -o -name '*.h' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' 2>/dev/null)
export PATH := $(CURDIR)/$(BIN):$(PATH)
export SKBUILD_EDITABLE_VERBOSE := 0

.PHONY: demo test ctest pytest browser bench bench-check bench-http bench-prometheus profile-http wheel sanitize profile docs lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip

# setuptools>=70.1 and wheel: sdists among the extras (drain3) are built
# without isolation too, and need bdist_wheel.
# Build requirements go into the venv so the editable install can skip build
# isolation: the persistent build/ dir then rebuilds only what changed.
$(STAMP): $(SOURCES) | $(PY)
	$(PY) -m pip install -q cmake ninja "setuptools>=70.1" wheel $$($(PY) -c "import tomllib; print(' '.join(repr(r) for r in tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires']))" | tr -d "'")
	$(PY) -m pip install -q --no-build-isolation -e ".[$(EXTRAS)]"
	touch $@

demo: $(STAMP)
	$(BIN)/trusswork demo --out reports/demo

test: ctest pytest

ctest: $(STAMP)
	cmake -S . -B build/ctest -G Ninja -DTRUSSWORK_PYTHON=OFF -DTRUSSWORK_TESTS=ON -DCMAKE_BUILD_TYPE=Release > /dev/null
	cmake --build build/ctest
	ctest --test-dir build/ctest --output-on-failure

pytest: $(STAMP) browser
	$(PY) -m pytest

# The log dashboards are tested in a real headless browser: Debian's chromium and
# chromium-driver (driven by selenium), installed here when missing.
browser:
	@{ command -v chromium > /dev/null && command -v chromedriver > /dev/null; } || { command -v apt-get > /dev/null && \
		{ apt-get install -y -q chromium chromium-driver > /dev/null 2>&1 || sudo -n apt-get install -y -q chromium chromium-driver > /dev/null; }; } \
		|| echo "chromium could not be installed; the dashboard browser tests skip (and fail under CI=true)"

bench: $(STAMP)
	mkdir -p reports
	$(PY) -m pytest benchmarks --benchmark-json=reports/bench.json --benchmark-columns=min,median,mean,ops,rounds

bench-check: $(STAMP)
	$(PY) benchmarks/track.py --quick

# The HTTP load test drives servers with wrk (a Debian package), installed here when missing.
bench-http: $(STAMP)
	@command -v wrk > /dev/null || { command -v apt-get > /dev/null && \
		{ apt-get install -y -q wrk > /dev/null 2>&1 || sudo -n apt-get install -y -q wrk > /dev/null; }; } \
		|| echo "wrk could not be installed; the load test falls back to its built-in generator"
	$(BIN)/trusswork http bench --out reports/http

# trusswork.tsdb against Prometheus (Debian's `prometheus` package, installed here when missing):
# disk bytes per sample and a range query over HTTP -> reports/bench-prometheus.json.
# TRUSSWORK_BENCH_QUICK=1 make bench-prometheus runs on the smaller data set.
bench-prometheus: $(STAMP)
	@{ command -v promtool > /dev/null && command -v prometheus > /dev/null; } || { command -v apt-get > /dev/null && \
		{ apt-get install -y -q prometheus > /dev/null 2>&1 || sudo -n apt-get install -y -q prometheus > /dev/null; }; } \
		|| echo "prometheus could not be installed; the benchmark records it as a missing peer"
	mkdir -p reports
	$(PY) -m pytest benchmarks/bench_tsdb.py::test_query_rate_sum_http --benchmark-json=reports/bench-prometheus.json \
		--benchmark-columns=min,median,mean,ops,rounds

# make profile-http [PROFILE_SECONDS=10] [PROFILE_ROUTE=plaintext] [PROFILE_APP=module:attr]
#   ->  reports/http/flamegraph.svg: py-spy (native frames too) samples our server, pinned to
#   CPU 0 and serving the load-test app, while wrk (or the built-in generator) loads it from CPU 1.
PROFILE_SECONDS ?= 10
PROFILE_ROUTE ?= plaintext
PROFILE_APP ?= trusswork.http._bench_app:app
profile-http: $(STAMP)
	mkdir -p reports/http
	@port=$$($(PY) -c "from trusswork.http.loadtest import free_port; print(free_port())"); \
	pin=$$(command -v taskset > /dev/null && echo "taskset -c 0"); \
	$$pin $(PY) -m trusswork http serve $(PROFILE_APP) --port $$port & server=$$!; \
	trap 'kill $$server 2> /dev/null' EXIT; \
	$(PY) -m trusswork.http.loadtest --port $$port --wait-only || exit 1; \
	$(BIN)/py-spy record --native --rate 250 --format flamegraph --duration $(PROFILE_SECONDS) \
		--pid $$server --output reports/http/flamegraph.svg & spy=$$!; \
	$(PY) -m trusswork.http.loadtest --port $$port --route $(PROFILE_ROUTE) --duration $(PROFILE_SECONDS) \
		|| exit 1; \
	wait $$spy || exit 1
	@echo "flamegraph: reports/http/flamegraph.svg"

sanitize: $(STAMP)
	cmake -S . -B build/sanitize -G Ninja -DTRUSSWORK_PYTHON=OFF -DTRUSSWORK_TESTS=ON -DTRUSSWORK_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug > /dev/null
	cmake --build build/sanitize
	ctest --test-dir build/sanitize --output-on-failure

# make profile BENCH=<pytest -k expression>  ->  reports/profile-<BENCH>.svg
profile: $(STAMP)
	@test -n "$(BENCH)" || { echo "usage: make profile BENCH=<benchmark name or -k expression>"; exit 2; }
	mkdir -p reports
	$(BIN)/py-spy record --rate 500 --output "reports/profile-$(subst $() ,_,$(BENCH)).svg" -- \
		$(PY) -m pytest benchmarks -q -k "$(BENCH)" --benchmark-min-time=0.5
	@echo "flamegraph: reports/profile-$(subst $() ,_,$(BENCH)).svg"

wheel: $(STAMP)
	bash tools/wheel_check.sh

docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir build/site

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf build dist reports $(VENV)
