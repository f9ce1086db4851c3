#!/usr/bin/env bash
# Runs one step of `make test` under a time limit, so that a hung step (a test process waiting
# for ever, a backtracer stuck under a sanitizer) ends the run instead of holding it:
#
#   scripts/time-limit.sh SECONDS STEP COMMAND [ARGUMENT...]
#
# The step gets SIGTERM at SECONDS and SIGKILL 30 s later, with every process it started (they
# share its process group). Its last line names the step and why it ended when it failed: a
# failing `make test` says in its last lines which step failed and how.
set -uo pipefail

limit=${1:?usage: time-limit.sh SECONDS STEP COMMAND...}
step=${2:?usage: time-limit.sh SECONDS STEP COMMAND...}
shift 2
start=$(date +%s)
timeout --kill-after=30 "$limit" "$@"
status=$?
elapsed=$(($(date +%s) - start))
case $status in
0) echo "time-limit: $step passed in ${elapsed} s (limit ${limit} s)" ;;
124 | 137) echo "time-limit: $step did not finish within its limit of ${limit} s and was stopped" >&2 ;;
*) echo "time-limit: $step failed with exit status $status after ${elapsed} s" >&2 ;;
esac
exit "$status"
