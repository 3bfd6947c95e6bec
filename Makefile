# Thin wrappers over CMake. The two commands of the README:
#   make demo   install dependencies, build, run `emotune recommend` on the shipped model
#   make test   install dependencies, build with CUDA (when nvcc is found) and without, run every test
JOBS ?= $(shell nproc)
BUILD ?= build
BUILD_NOCUDA ?= build-nocuda
BUILD_SANITIZE ?= build-sanitize
CMAKE_FLAGS ?=
DEMO_IMAGE ?= examples/face.jpg
DEMO_MODEL ?= models/vgg.safetensors

.PHONY: all deps build build-nocuda demo test test-all test-cuda test-sanitize oracle onnx-check browser-check serve-bench fuzz bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DEMOTUNE_CUDA=AUTO $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

build-nocuda: deps
	cmake -S . -B $(BUILD_NOCUDA) -DCMAKE_BUILD_TYPE=Release -DEMOTUNE_CUDA=OFF -DEMOTUNE_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD_NOCUDA) -j $(JOBS)

demo: build
	@if [ ! -f $(DEMO_MODEL) ]; then \
	  echo "demo: no trained model at $(DEMO_MODEL) yet (see docs/results.md)"; exit 1; fi
	$(BUILD)/bin/emotune recommend --image $(DEMO_IMAGE) --model $(DEMO_MODEL) --top 5

# Every test runs in the CPU-only build; the CUDA build adds its CUDA tests (SKIPPED without a GPU)
# and the CPU tests labelled `build`, whose subject changes with the backend (tests/CMakeLists.txt).
# `make test-all` runs the whole suite in both builds.
test: build build-nocuda
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L 'cuda|build'
	cd $(BUILD_NOCUDA) && ctest --output-on-failure -j $(JOBS)

test-all: build build-nocuda
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(BUILD_NOCUDA) && ctest --output-on-failure -j $(JOBS)

# The CUDA tests alone (they print SKIPPED without a GPU).
test-cuda: build
	cd $(BUILD) && ctest -L cuda --output-on-failure

# The CPU test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (every finding fatal);
# .ci/run runs it after `make test`. Includes the replay of the fuzz corpora. -O1 -g1 (line tables
# for the reports' stack traces) with assertions on: on 2 cores it builds in 7 minutes where
# RelWithDebInfo took 13, and the tests run about as fast.
test-sanitize: deps
	cmake -S . -B $(BUILD_SANITIZE) -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" -DEMOTUNE_CUDA=OFF \
	  -DEMOTUNE_SANITIZE=ON -DEMOTUNE_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD_SANITIZE) -j $(JOBS)
	cd $(BUILD_SANITIZE) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

# The Keras oracle: emotune's training step recomputed by TensorFlow/Keras (pip, into a cached
# venv under build/) from the same weights, batches and dropout masks; see tests/oracle/run.sh.
oracle: build-nocuda
	ORACLE_BUILD=$(BUILD_NOCUDA) tests/oracle/run.sh

# ONNX export parity: both shipped models exported, checked by the ONNX checker and run by ONNX
# Runtime against emotune on 256 PublicTest faces (tests/onnx/run.sh; pip needs PyPI the first time).
onnx-check: build-nocuda
	scripts/install-deps.sh --onnx
	tests/onnx/run.sh $(BUILD_NOCUDA)

# The page of `emotune serve` in headless Chromium (Debian's chromium + chromedriver, Selenium
# from PyPI in a venv under the build folder): upload, result, policy switch, an error, phone
# width; screenshots in $(BUILD_NOCUDA)/browser/ (tests/browser/run.sh).
browser-check: build-nocuda
	scripts/install-deps.sh --browser
	tests/browser/run.sh $(BUILD_NOCUDA)

# Load and soak of `emotune serve` on loopback (a benchmark, not in CI; docs/benchmarks.md).
serve-bench: build-nocuda
	python3 bench/serve_load.py --binary $(BUILD_NOCUDA)/bin/emotune

# libFuzzer campaigns (clang): FUZZ_SECONDS per target; see scripts/fuzz.sh and docs/reliability.md.
FUZZ_SECONDS ?= 600
fuzz:
	scripts/install-deps.sh --fuzz
	scripts/fuzz.sh $(FUZZ_SECONDS)

bench: build
	@for b in $(BUILD)/bin/bench_*; do echo "== $$b"; $$b; done

clean:
	rm -rf $(BUILD) $(BUILD_NOCUDA) $(BUILD_SANITIZE) build-fuzz
