#!/usr/bin/env bash
# run_logged.sh LOG COMMAND...: runs COMMAND, shows its output and keeps a copy in LOG (for the
# secret scan). The exit status is COMMAND's.
set -o pipefail
log=$1
shift
mkdir -p "$(dirname "$log")"
"$@" 2>&1 | tee "$log"
