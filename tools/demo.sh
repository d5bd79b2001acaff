#!/bin/sh
# demo.sh - `make demo`: run examples/launch_campaign.lua against a local
# mock (bin/instantly-mock with seed data on 127.0.0.1), showing its
# output, and stop the mock afterwards (nothing is left running, even on
# Ctrl-C). The Makefile's demo target installs what is missing and builds
# the core first.
set -eu
cd "$(dirname "$0")/.."
exec sh tools/run-examples.sh --show launch_campaign
