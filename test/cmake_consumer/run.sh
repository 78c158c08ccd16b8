#!/usr/bin/env bash
# test/cmake_consumer/run.sh [build-dir] [--shared]
#
# Proves that an application can use apollo_oauth both ways:
#   1. `cmake --install` into a fresh prefix, then find_package(apollo_oauth) from it;
#   2. add_subdirectory of this source tree.
# Each consumer runs the authorization-code flow against the emulator.
#
# build-dir: an already configured build of this tree to install from (CI passes build/, which
# `scripts/run.sh test` has just built). Without it, a library-only build is made in
# build-consumer-lib/. --shared makes that build (and the add_subdirectory one) use shared libraries.
# Work directories are fixed (build-consumer*/ at the top of the tree) so that ccache serves reruns;
# the prefix and the find_package consumer are recreated on every run.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=""
shared=OFF
for arg in "$@"; do
    case "$arg" in
        --shared) shared=ON ;;
        -*) echo "usage: $0 [build-dir] [--shared]" >&2; exit 2 ;;
        *) build=$(cd "$arg" && pwd) ;;
    esac
done
suffix=""
[ "$shared" = ON ] && suffix="-shared"
if [ -n "$build" ] && [ "$shared" = ON ]; then
    echo "--shared makes its own library build; do not pass a build directory with it" >&2
    exit 2
fi

# Paths relative to the checkout, so that ccache serves any clone of it (as scripts/run.sh does).
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
jobs=$(nproc)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}")

if [ -z "$build" ]; then
    build="$root/build-consumer-lib$suffix"
    cmake -S "$root" -B "$build" "${common[@]}" -DBUILD_SHARED_LIBS="$shared" -DAPOLLO_OAUTH_BUILD_TESTS=OFF \
        -DAPOLLO_OAUTH_BUILD_EXAMPLES=OFF -DAPOLLO_OAUTH_BUILD_BENCH=OFF >/dev/null
fi
[ -f "$build/CMakeCache.txt" ] || { echo "$build is not a configured build directory" >&2; exit 2; }

work="$root/build-consumer$suffix"
prefix="$work/prefix"
echo "== install $build into $prefix"
cmake --build "$build" -j "$jobs"
rm -rf "$prefix" "$work/find_package" "$work/version_check"
cmake --install "$build" --prefix "$prefix" >/dev/null

# Every public header is installed, and nothing build-only leaked into the exported targets.
missing=$(cd "$root/include" && find . -name '*.hpp' | while read -r h; do [ -f "$prefix/include/$h" ] || echo "$h"; done)
[ -z "$missing" ] || { echo "headers not installed: $missing" >&2; exit 1; }
if grep -q "apollo_oauth_warnings\|$root" "$prefix"/lib*/cmake/apollo_oauth/*.cmake; then
    echo "the installed package refers to the build tree or to apollo_oauth_warnings" >&2
    exit 1
fi

# The tree's own version (major.minor), which a consumer asks for, and the next minor, which it
# must be refused: read from project(), so that a version bump needs no edit here.
read -r major minor < <(sed -n 's/^project(apollo_oauth VERSION \([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p' "$root/CMakeLists.txt")
[ -n "$major" ] && [ -n "$minor" ] || { echo "no version in $root/CMakeLists.txt's project()" >&2; exit 1; }
version="$major.$minor"
next_minor="$major.$((minor + 1))"

echo "== consumer via find_package(apollo_oauth $version)"
cmake -S "$root/test/cmake_consumer" -B "$work/find_package" "${common[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
    -DAPOLLO_OAUTH_CONSUMER_MODE=find_package -DAPOLLO_OAUTH_REQUIRED_VERSION="$version" >/dev/null
cmake --build "$work/find_package" -j "$jobs"
"$work/find_package/consumer" | tee "$work/find_package.out"
# A library built with hiredis has the Redis store, and its package must give it too.
if grep -q "^HIREDIS_FOUND:INTERNAL=1" "$build/CMakeCache.txt" && ! grep -q "Redis token store" "$work/find_package.out"; then
    echo "the library was built with the Redis store, but find_package(apollo_oauth) gave no apollo_oauth::redis" >&2
    exit 1
fi

# 0.x releases are compatible within a minor version only: asking for the next minor must be refused.
echo "== find_package(apollo_oauth $next_minor) is refused"
if cmake -S "$root/test/cmake_consumer" -B "$work/version_check" "${common[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
    -DAPOLLO_OAUTH_REQUIRED_VERSION="$next_minor" >"$work/version_check.log" 2>&1; then
    echo "find_package(apollo_oauth $next_minor) accepted the installed $(grep -o 'PACKAGE_VERSION "[^"]*"' \
        "$prefix"/lib*/cmake/apollo_oauth/apollo_oauthConfigVersion.cmake)" >&2
    exit 1
fi
grep -q "compatible with requested version" "$work/version_check.log" || { cat "$work/version_check.log" >&2; exit 1; }

# At the same depth as build/, so that ccache serves the library's objects from the main build.
echo "== consumer via add_subdirectory(apollo_oauth)"
subdirectory="$root/build-consumer-subdirectory$suffix"
cmake -S "$root/test/cmake_consumer" -B "$subdirectory" "${common[@]}" -DBUILD_SHARED_LIBS="$shared" \
    -DAPOLLO_OAUTH_CONSUMER_MODE=subdirectory -DAPOLLO_OAUTH_SOURCE_DIR="$root" >/dev/null
cmake --build "$subdirectory" -j "$jobs"
if grep -q "apollo_oauthTargets" "$subdirectory/apollo_oauth/cmake_install.cmake"; then
    echo "add_subdirectory(apollo_oauth) generated install rules: APOLLO_OAUTH_INSTALL should be off" >&2
    exit 1
fi
"$subdirectory/consumer"
echo "== cmake consumer: both ways built and ran"
