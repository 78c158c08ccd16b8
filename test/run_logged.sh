#!/usr/bin/env bash
# run_logged.sh LOG COMMAND...: runs COMMAND, shows its output and keeps a copy in LOG.
set -o pipefail
log=$1
shift
"$@" 2>&1 | tee "$log"
