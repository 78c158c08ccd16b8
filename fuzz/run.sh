#!/usr/bin/env bash
# fuzz/run.sh [--seconds N] [--jobs J] [TARGET...]
#
# Builds the libFuzzer targets with clang++ (ASan + UBSan) into <checkout>/build-fuzz and runs each
# for N seconds (default 30), starting from the seed corpus (fuzz/corpus/<target>) and the past
# crashes (fuzz/regressions/<target>). New interesting inputs go to build-fuzz/work/<target>, not
# into the tree; a crash stops the run, leaves its input in build-fuzz/artifacts/<target>/ and
# makes the script fail. Installs the Debian packages it needs when missing. Safe to run again:
# build-fuzz/work keeps growing, so a later run starts where the last one stopped.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=30
jobs=1
targets=()
while (($#)); do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --seconds=*) seconds=${1#--seconds=}; shift ;;
        --jobs) jobs=$2; shift 2 ;;
        --jobs=*) jobs=${1#--jobs=}; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        -*) echo "unknown option: $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
all_targets=(callback encoding http_headers http_response record_codec redis_record token_response)
((${#targets[@]})) || targets=("${all_targets[@]}")

# clang 14 and its libFuzzer/sanitizer runtimes (libclang_rt.fuzzer-x86_64.a is in libclang-rt-14-dev).
packages=(clang-14 libclang-rt-14-dev cmake ninja-build ccache libssl-dev libboost1.81-all-dev
          libboost-json1.81-dev libboost-url1.81-dev libhiredis-dev pkg-config)
"$root/scripts/ensure_packages.sh" "${packages[@]}"

build="$root/build-fuzz"
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
cmake -S "$root/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
    work="$build/work/$t" artifacts="$build/artifacts/$t"
    mkdir -p "$work" "$artifacts" "$root/fuzz/regressions/$t"
    echo "== fuzz_$t for ${seconds}s"
    log="$build/$t.log"
    # -max_len: large enough for a whole token response; -rss_limit_mb keeps 2 GB machines safe.
    parallel=()
    # Several processes share the work corpus; each writes build-fuzz/fuzz-<n>.log.
    ((jobs > 1)) && parallel=(-fork="$jobs")
    if (cd "$build" && "$build/fuzz_$t" -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=1536 \
        -timeout=10 "${parallel[@]}" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "$work" "$root/fuzz/corpus/$t" "$root/fuzz/regressions/$t") >"$log" 2>&1; then
        grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|cov:" "$log" | tail -3 || true
    else
        echo "fuzz_$t FAILED; its output is in $log, the input in $artifacts/:" >&2
        grep -E "ERROR|runtime error|invariant broken|SUMMARY" "$log" | head -5 >&2 || true
        ls "$artifacts" >&2
        failed+=("$t")
    fi
done
if ((${#failed[@]})); then
    echo "crashes in: ${failed[*]} (add the input to fuzz/regressions/<target>/ once fixed)" >&2
    exit 1
fi
echo "fuzzing: no crash in ${targets[*]}"
