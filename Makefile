# What people type. `make run` and `make test` work on a fresh Debian 12 machine as root.
SWIFT ?= swift
STATE ?= $(CURDIR)/state
DEMO := $(STATE)/demo
SWIFTFLAGS := -Xswiftc -warnings-as-errors
BIN := .build/debug/smime-milter
RELEASE_BIN := .build/release/smime-milter

.PHONY: all deps test-deps build run demo-pki test bench fuzz clean

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
	$(SWIFT) test --skip-build; status=$$?; \
		pkill -f "[g]pg-agent --homedir /tmp/smime-milter-test-" || true; exit $$status
	SMIME_MILTER=$(CURDIR)/$(BIN) timeout 1200 python3 -m pytest -q -p no:cacheprovider Tests/EndToEndTests
	$(MAKE) fuzz FUZZ_SECONDS=60

# Benchmarks measure the release build.
bench: deps demo-pki
	$(SWIFT) build -c release $(SWIFTFLAGS)
	@scripts/bench.sh $(RELEASE_BIN) $(DEMO)

clean:
	rm -rf .build $(STATE)

# libFuzzer over the MIME parser and signing preparation, seeded from the test corpus.
# FUZZ_SECONDS=600 make fuzz for a longer run; crashes land in state/fuzz/artifacts.
FUZZ_SECONDS ?= 60
fuzz:
	$(SWIFT) build --scratch-path .build-fuzz --product MIMEFuzz -Xswiftc -DFUZZING \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -use-ld=lld
	@mkdir -p $(STATE)/fuzz/corpus $(STATE)/fuzz/artifacts
	SWIFT_BACKTRACE=enable=no .build-fuzz/debug/MIMEFuzz $(STATE)/fuzz/corpus Tests/MIMETests/Corpus \
		-max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix=$(STATE)/fuzz/artifacts/ -print_final_stats=1
