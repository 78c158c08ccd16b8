#!/usr/bin/env bash
# scripts/run.sh quickstart|test|web [--sanitize=address,undefined|thread]
#
# On a Debian 12 machine: installs the Debian packages that are missing, configures and builds
# (ccache makes rebuilds cheap), then runs the quickstart against the embedded emulator, or the
# whole test suite, or starts the web example (examples/web_app) against the embedded emulator and
# prints the URL to open. Safe to run again and again.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-}
sanitize=""
for arg in "${@:2}"; do
    case "$arg" in
        --sanitize=*) sanitize=${arg#--sanitize=} ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done
case "$what" in
    quickstart|test|web) ;;
    *) echo "usage: scripts/run.sh quickstart|test|web [--sanitize=address,undefined|thread]" >&2; exit 2 ;;
esac

packages=(g++ cmake ninja-build ccache pkg-config libssl-dev libboost1.81-all-dev libboost-json1.81-dev
          libboost-url1.81-dev libhiredis-dev redis-server)
# The browser test (headless Chromium over WebDriver, CAs trusted through NSS) and the load test (wrk).
[ "$what" = test ] && packages+=(chromium chromium-driver python3-selenium libnss3-tools wrk)
"$root/scripts/ensure_packages.sh" "${packages[@]}"

build="$root/build"
options=()
if [ -n "$sanitize" ]; then
    # The sanitizer builds check the test suite; the quickstart and benchmarks are the plain build's.
    build="$root/build-$(echo "$sanitize" | tr ',' '-')"
    options=(-DAPOLLO_OAUTH_BUILD_EXAMPLES=OFF -DAPOLLO_OAUTH_BUILD_BENCH=OFF)
fi
# Paths relative to the checkout, so that ccache serves any clone of it (CI builds a fresh one).
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
jobs=$(nproc)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPOLLO_OAUTH_SANITIZE="$sanitize" \
    "${options[@]}" >/dev/null
if [ "$what" = quickstart ]; then
    cmake --build "$build" -j "$jobs" --target quickstart
    "$build/examples/quickstart"
elif [ "$what" = web ]; then
    cmake --build "$build" -j "$jobs" --target web_app
    state="$build/web_app-run"
    mkdir -p "$state"
    echo "Trust $state/trusted_cas.pem (the app's and the emulator's CA) in your browser, or accept its"
    echo "certificate warnings for https://localhost and the emulator's https://127.0.0.1 page. Ctrl-C stops."
    exec "$build/examples/web_app/web_app" --emulator --store "file:$state/tokens" --write-ca "$state/trusted_cas.pem"
else
    cmake --build "$build" -j "$jobs"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/test/tsan.supp}
    runner=()
    # GCC 12's TSan cannot map its shadow memory with the 28-bit mmap randomisation of recent
    # kernels ("unexpected memory mapping"); running without ASLR avoids it.
    case "$sanitize" in *thread*) runner=(setarch "$(uname -m)" -R) ;; esac
    selection=()
    # The `long` tests are the issues' full-size repetitions (4 processes x 10,000 callers, 20
    # rotations of 2 s tokens) of tests that also run here at their default size. Under a
    # sanitizer's 5-15x slowdown a 2 s token outlives nothing, so they run in the plain build only.
    [ -n "$sanitize" ] && selection=(-LE long)
    "${runner[@]}" ctest --test-dir "$build" --output-on-failure -j 2 "${selection[@]}"
fi
