#!/usr/bin/env bash
# bench/web_load.sh [--duration S] [--json FILE]
#
# The web example under wrk, 64 connections for 30 s per endpoint, while the emulator's tokens
# live 2 s, in 6 interleaved rounds: POST /accounts/{id}/tasks (token cache + api_client) next to POST /baseline/tasks
# (the same upstream request with a fixed token, no cache: the server's own ceiling). Prints
# requests/s, p50 and p99 of each and their ratio (target: the library-backed endpoint >= 0.9x),
# and fails if any answer was not 2xx or a rotation took more than one refresh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=30
json=""
while (($#)); do
    case "$1" in
        --duration) duration=$2; shift ;;
        --json) json=$2; shift ;;
        *) echo "usage: bench/web_load.sh [--duration S] [--json FILE]" >&2; exit 2 ;;
    esac
    shift
done

"$root/scripts/ensure_packages.sh" wrk python3
build="$root/build"
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPOLLO_OAUTH_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target web_app
/usr/bin/python3 "$root/test/load/load_test.py" "$build/examples/web_app/web_app" --duration "$duration" \
    --rounds 6 \
    --connections 64 --threads 2 ${json:+--json "$json"}
