# What people type. `make run` and `make test` work on a fresh Debian 12 machine as root.
SWIFT ?= swift
STATE ?= $(CURDIR)/state
DEMO := $(STATE)/demo
SWIFTFLAGS := -Xswiftc -warnings-as-errors
BIN := .build/debug/smime-milter
RELEASE_BIN := .build/release/smime-milter

.PHONY: all deps test-deps build run demo demo-pki test test-asan test-deb deb bench fuzz install clean

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

# The demo milter in a loopback Postfix of its own: one internal and one external message.
demo: build demo-pki
	@scripts/install-deps.sh test
	@python3 scripts/demo.py $(BIN) $(DEMO)

# Every test process runs under a time limit (scripts/time-limit.sh): a hung step is stopped
# with a line naming it, so a failing `make test` ends with its reason in its last lines.
LIMIT := scripts/time-limit.sh

test: test-deps
	$(SWIFT) build --build-tests $(SWIFTFLAGS)
	$(LIMIT) 1200 "swift test" $(SWIFT) test --skip-build
	SMIME_MILTER=$(CURDIR)/$(BIN) $(LIMIT) 1200 "end-to-end tests" python3 -m pytest -q -p no:cacheprovider Tests/EndToEndTests
	$(MAKE) fuzz FUZZ_SECONDS=60
	$(MAKE) test-asan
	$(MAKE) test-deb

# The Swift tests and the end-to-end tests that drive the daemon, under AddressSanitizer with
# leak detection: no leak and no memory error in our code (Tests/lsan.supp and Tests/asan.supp
# list the libraries' own, each with why). SMIME_MILTER_SANITIZED makes the end-to-end fixtures refuse any other
# binary than the sanitized one and read its sanitizer reports. The Swift backtracer is off: under
# AddressSanitizer it can wait for ever on a crashed test process.
SANITIZED := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:suppressions=$(CURDIR)/Tests/asan.supp \
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan.supp:print_suppressions=0 SWIFT_BACKTRACE=enable=no
SANITIZED_END_TO_END := test_milter.py test_hardware_tokens.py test_report.py test_revocation.py test_postfix.py \
	test_policy.py test_hostile.py
test-asan: test-deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan $(SWIFTFLAGS)
	$(SANITIZED) $(LIMIT) 1800 "swift test under AddressSanitizer" $(SWIFT) test --skip-build --scratch-path .build-asan
	$(SANITIZED) SMIME_MILTER=$(CURDIR)/.build-asan/debug/smime-milter SMIME_MILTER_SANITIZED=1 \
		$(LIMIT) 1200 "end-to-end tests under AddressSanitizer" python3 -m pytest -q -p no:cacheprovider \
		$(addprefix Tests/EndToEndTests/,$(SANITIZED_END_TO_END))

# Benchmarks measure the release build.
bench: demo-pki
	@scripts/install-deps.sh bench
	$(SWIFT) build -c release $(SWIFTFLAGS)
	@scripts/bench.sh $(RELEASE_BIN) $(DEMO)

# Installs the release build, manual pages, sample configuration and systemd units.
PREFIX ?= /usr
DESTDIR ?=
install:
	$(SWIFT) build -c release $(SWIFTFLAGS)
	install -D -m 0755 $(RELEASE_BIN) $(DESTDIR)$(PREFIX)/sbin/smime-milter
	install -D -m 0644 man/smime-milter.8 $(DESTDIR)$(PREFIX)/share/man/man8/smime-milter.8
	install -D -m 0644 man/smime-milter.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/smime-milter.conf.5
	install -D -m 0644 systemd/smime-milter.service $(DESTDIR)/lib/systemd/system/smime-milter.service
	install -D -m 0644 systemd/smime-milter-report.service systemd/smime-milter-report.timer -t $(DESTDIR)/lib/systemd/system/
	install -D -m 0644 systemd/smime-milter.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/smime-milter.conf
	install -D -m 0644 systemd/smime-milter.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/smime-milter.conf
	install -d -m 0750 $(DESTDIR)/etc/smime-milter $(DESTDIR)/etc/smime-milter/pins
	install -D -m 0644 conf/smime-milter.conf.sample conf/signing-table.sample conf/internal-hosts.sample conf/units.sample \
		-t $(DESTDIR)$(PREFIX)/share/doc/smime-milter/examples/
	test -e $(DESTDIR)/etc/smime-milter/smime-milter.conf || \
		install -m 0644 conf/smime-milter.conf $(DESTDIR)/etc/smime-milter/smime-milter.conf
	install -D -m 0644 conf/trust/vgca-root-2010.pem conf/trust/README -t $(DESTDIR)$(PREFIX)/share/smime-milter/trust/

# The Debian package: dist/smime-milter_VERSION_amd64.deb (debian/README.source).
deb:
	@scripts/install-deps.sh deb
	@scripts/make-deb.sh

# The package installed, configured, upgraded and purged in a fresh Debian 12 root without Swift.
test-deb:
	@scripts/install-deps.sh deb
	$(LIMIT) 1500 "package test" scripts/test-deb.sh

clean:
	rm -rf .build .build-asan .build-fuzz $(STATE) dist

# The libFuzzer targets, each run FUZZ_SECONDS (FUZZ_SECONDS=600 make fuzz for a longer run);
# each keeps its corpus in state/fuzz/TARGET/corpus and its crashes in state/fuzz/TARGET/artifacts.
# MIMEFuzz: the MIME parser and signing preparation. VerifyFuzz: an incoming message to verdict
# and header fields, trusting the seed corpus's throwaway CA, revocation off (its inputs are
# mutated whole from the start: a signed message is longer than libFuzzer's first length
# limits, which would cut its signature off). ConfigFuzz: the configuration file and the tables.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = MIMEFuzz VerifyFuzz ConfigFuzz
FUZZ_BUILD = --scratch-path .build-fuzz -Xswiftc -DFUZZING -Xswiftc -sanitize=fuzzer,address \
	-Xswiftc -parse-as-library -Xswiftc -use-ld=lld
# TARGET, seed directories, options. The libraries' own leaks are suppressed as in test-asan; a
# run never lasts longer than FUZZ_SECONDS plus time to load the corpus.
fuzz-run = SWIFT_BACKTRACE=enable=no LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan.supp:print_suppressions=0 $(LIMIT) $$(( $(FUZZ_SECONDS) + 300 )) "fuzz $(1)" .build-fuzz/debug/$(1) \
	$(STATE)/fuzz/$(1)/corpus $(2) -max_total_time=$(FUZZ_SECONDS) $(3) -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix=$(STATE)/fuzz/$(1)/artifacts/ -print_final_stats=1
fuzz:
	for target in $(FUZZ_TARGETS); do \
		$(SWIFT) build --product $$target $(FUZZ_BUILD) || exit 1; \
		mkdir -p $(STATE)/fuzz/$$target/corpus $(STATE)/fuzz/$$target/artifacts; \
	done
	$(call fuzz-run,MIMEFuzz,Tests/MIMETests/Corpus,-max_len=65536)
	SMIME_FUZZ_TRUST=Tests/FuzzSeeds/Verify/trust.pem \
		$(call fuzz-run,VerifyFuzz,Tests/FuzzSeeds/Verify,-max_len=65536 -len_control=0)
	$(call fuzz-run,ConfigFuzz,Tests/FuzzSeeds/Config conf,-max_len=8192)
