# instantly - Lua 5.4 SDK for the Instantly.ai API V2.
#
#   make          build the C core into $(BUILD)/instantly/core.so
#   make demo     install what the demo needs (as root), build, run
#                 examples/launch_campaign.lua against a local mock
#   make test     install the test group (as root), build, run everything
#   make fresh-check  both commands above on a bare Debian 12 root (mmdebstrap;
#                 root, the package mirror and minutes; not part of .ci/run)
#   make asan     the suite with AddressSanitizer + UBSan
#   make valgrind the JSON, transport, CSV, shape-test and record specs under valgrind
#   make lint     luacheck + cppcheck
#   make fuzz     libFuzzer on the JSON decoder (FUZZ_SECONDS=600)
#   make bench    benchmarks, with ratios against baselines from the same run
#   make docs     HTML API reference (LDoc) into docs/html

LUA       ?= lua5.4
BUSTED    ?= busted
BUILD     ?= build
CC        ?= gcc
PKGS      := lua5.4 libcurl
WERROR    ?= -Werror
OPT       ?= -O2
CFLAGS    ?= $(OPT) -g
WARN      := -std=c99 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes $(WERROR)
DEPCFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEPLIBS    = $(shell pkg-config --libs libcurl 2>/dev/null)
SRCS      := $(wildcard csrc/*.c)
HDRS      := $(wildcard csrc/*.h)
CORE      := $(BUILD)/instantly/core.so

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all deps demo-deps test spec rockcheck embed-test examples-test docs-test demo \
        asan valgrind lint fuzz bench docs fresh-check clean

all: $(CORE)

deps:
	@sh tools/deps.sh test

demo-deps:
	@sh tools/deps.sh demo

$(CORE): $(SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -fPIC -shared $(DEPCFLAGS) $(SRCS) -o $@ $(DEPLIBS) $(LDFLAGS)

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory spec rockcheck embed-test examples-test

# LDoc runs once in `make test`, inside spec/docs_spec.lua; this target is
# the same check on its own.

spec: $(CORE)
	$(BUSTED) --lua=$(LUA) --cpath='./$(BUILD)/?.so' $(BUSTED_ARGS)

# Install the rock into a throwaway tree, offline, and load it from there.
rockcheck:
	@sh tools/rockcheck.sh

embed-test:
	@if [ -f examples/embed/Makefile ]; then $(MAKE) --no-print-directory -C examples/embed test; fi

examples-test:
	@if [ -f tools/run-examples.sh ]; then sh tools/run-examples.sh; fi

docs-test:
	@if [ -f tools/docs.sh ]; then sh tools/docs.sh; fi

docs:
	@sh tools/docs.sh

demo: demo-deps
	@$(MAKE) --no-print-directory all
	@sh tools/demo.sh

fresh-check:
	@sh tools/fresh-check.sh

# The sanitizers run inside the system lua5.4, which is not instrumented:
# the ASan runtime is preloaded and leak checks cover the whole process.
# Reports go to files (log_path), judged by tools/asan-report.sh, so the
# helper programs specs start (and their deliberate leaks) stay quiet.
ASAN_BUILD := build-asan
asan:
	@sh tools/deps.sh test asan
	$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CC=gcc OPT=-O1 \
	    CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" all
	@rm -rf $(ASAN_BUILD)/reports && mkdir -p $(ASAN_BUILD)/reports
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=0:log_path=$(CURDIR)/$(ASAN_BUILD)/reports/asan \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_BUILD)/reports/ubsan \
	    $(BUSTED) --lua=$(LUA) --cpath='./$(ASAN_BUILD)/?.so' $(BUSTED_ARGS); \
	status=$$?; sh tools/asan-report.sh $(ASAN_BUILD)/reports || status=1; exit $$status

VALGRIND_SPECS ?= spec/json_spec.lua spec/json_encode_spec.lua spec/json_diff_spec.lua spec/transport_spec.lua spec/transport_tls_spec.lua spec/transport_h2_spec.lua spec/csv_spec.lua spec/validate_compiled_spec.lua spec/records_spec.lua spec/gather_spec.lua spec/client_send_spec.lua
valgrind: all
	@sh tools/deps.sh test valgrind
	@for s in $(VALGRIND_SPECS); do \
	    [ -f $$s ] || continue; echo "valgrind: $$s"; \
	    valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	        --suppressions=tools/valgrind.supp \
	        $(LUA) tools/run-spec.lua --cpath='./$(BUILD)/?.so' $$s >$(BUILD)/valgrind.log 2>&1 \
	        || { cat $(BUILD)/valgrind.log; exit 1; }; \
	    grep -c '^ok' $(BUILD)/valgrind.log | sed 's/^/  specs passed: /'; \
	done

lint:
	@sh tools/deps.sh test lint
	luacheck --no-color -q lua spec bin examples tools bench
	cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
	    --inline-suppr --std=c99 -I csrc csrc

FUZZ_SECONDS ?= 600
fuzz:
	@sh tools/deps.sh test asan
	@sh tools/fuzz.sh $(FUZZ_SECONDS)

bench: all
	@sh tools/deps.sh test bench
	@sh tools/bench.sh

clean:
	rm -rf build build-* docs/html
