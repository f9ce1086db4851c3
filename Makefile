# What people type. `make run` and `make test` work on a fresh Debian 12 machine as root.
SWIFT ?= swift
STATE ?= $(CURDIR)/state
DEMO := $(STATE)/demo
SWIFTFLAGS := -Xswiftc -warnings-as-errors
BIN := .build/debug/smime-milter
RELEASE_BIN := .build/release/smime-milter

.PHONY: all deps test-deps build run demo-pki test bench clean

all: build

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh test

build: deps
	$(SWIFT) build $(SWIFTFLAGS)

# The demo: a SoftHSM token store and test CA created under state/demo on first use.
demo-pki: deps
	@scripts/make-test-pki.sh $(DEMO)

run: build demo-pki
	@scripts/run-demo.sh $(BIN) $(DEMO)

test: test-deps
	$(SWIFT) build --build-tests $(SWIFTFLAGS)
	$(SWIFT) test --skip-build

# Benchmarks measure the release build.
bench: deps demo-pki
	$(SWIFT) build -c release $(SWIFTFLAGS)
	@scripts/bench.sh $(RELEASE_BIN) $(DEMO)

clean:
	rm -rf .build $(STATE)
