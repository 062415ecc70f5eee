# A thin wrapper over CMake, for the commands people type most.
#
#   make            configure and build into build/ (CUDA backend when nvcc is found)
#   make run        the main job: quantize the bundled model with GPTQ, then generate with it
#   make test       everything CI runs: build, tests, sanitizer build + tests, parser fuzzing
#   make install    install libgptq, gptq.h and gptq.pc (PREFIX=/usr/local)
#   make deps       install the Debian packages the build needs (run and test do it first)
#   make clean
BUILD   ?= build
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=
MODEL   ?= models/docs-llama-8m
QMODEL  ?= out/docs-llama-8m-gptq-w4g128
PROMPT  ?= The kernel scheduler

.PHONY: all deps configure build run test install clean

all: build

deps:
	scripts/install-deps.sh

configure:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Quantize (self-generated calibration, so no data is needed), then generate from the result.
run: deps build
	scripts/run-main-job.sh $(BUILD) $(MODEL) $(QMODEL) "$(PROMPT)"

test: deps
	scripts/run-tests.sh

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
