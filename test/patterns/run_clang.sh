#!/usr/bin/env bash
# test/patterns/run_clang.sh: builds the library and the call-pattern test with clang 14 (in
# build-clang14/, through ccache) and runs it. CI runs it after the g++ 12 suite (.ci/run), so
# that every documented call form is checked with both of Debian 12's compilers.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/scripts/ensure_packages.sh" clang-14 libstdc++-12-dev cmake ninja-build ccache libssl-dev \
    libboost1.81-all-dev libboost-json1.81-dev libboost-url1.81-dev
build="$root/build-clang14"
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
    -DAPOLLO_OAUTH_BUILD_EXAMPLES=OFF -DAPOLLO_OAUTH_BUILD_BENCH=OFF -DAPOLLO_OAUTH_BUILD_TOOLS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target patterns_test
"$build/test/patterns/patterns_test" --report_level=short
