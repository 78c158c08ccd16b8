#!/usr/bin/env bash
# bench/run.sh [--quick] [--rounds N]
#
# Builds the benchmarks and the Go baseline (bench/go: golang.org/x/oauth2 from Debian's packages,
# built offline), runs the four benchmarks (each measures its baselines, Go's among them, in the
# same run, interleaved, and reports medians over the rounds), then the cross-process herd through
# Redis (bench_redis_herd: K processes sharing one redis-server it starts), and leaves in
# build/bench-results/:
#   <name>.json      each benchmark's figures and target checks;
#   results.json     all of them, with the date and the machine;
#   herd.svg         herd wall time and wake-up cost against N (gnuplot);
#   spreading.svg    when the refresh-ahead refreshes of accounts issued together started.
# Exit status 0 when every target was met and every count right, 1 when a performance target was
# missed, 3 when a count was wrong (the tables say which).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=5
quick=()
while (($#)); do
    case "$1" in
        --quick) quick=(--quick); rounds=1 ;;
        --rounds) rounds=$2; shift ;;
        *) echo "usage: bench/run.sh [--quick] [--rounds N]" >&2; exit 2 ;;
    esac
    shift
done

packages=(g++ cmake ninja-build ccache pkg-config libssl-dev libboost1.81-all-dev libboost-json1.81-dev
          libboost-url1.81-dev gnuplot-nox golang-go golang-golang-x-oauth2-dev redis-server libhiredis-dev)
"$root/scripts/ensure_packages.sh" "${packages[@]}"

build="$root/build"
out="$build/bench-results"
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPOLLO_OAUTH_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target bench_hot_path bench_herd bench_throughput bench_accounts \
    bench_redis_herd
mkdir -p "$out"
go_binary="$build/bench/go_oauth2"
"$root/bench/go/build.sh" "$go_binary"

status=0
for name in hot_path herd throughput accounts; do
    go=()
    case "$name" in hot_path | herd) go=(--go "$go_binary") ;; esac
    "$build/bench/bench_$name" --rounds "$rounds" "${quick[@]}" "${go[@]}" --json "$out/$name.json" || {
        code=$?
        # 1: a performance target missed; 3: a count wrong (a broken promise, reported, and the
        # run goes on so that every figure is seen); anything else: the benchmark failed.
        ((code == 1 || code == 3)) || exit "$code"
        ((status == 3)) || status=$code
    }
done

# K = 1, 2, 4 processes on one expired token through Redis, and the hot path over the Redis store.
names=(hot_path herd throughput accounts redis_herd)
"$build/bench/bench_redis_herd" --rounds "$rounds" "${quick[@]}" --json "$out/redis_herd.json" || {
    code=$?
    ((code == 1 || code == 3)) || exit "$code"
    ((status == 3)) || status=$code
}

# The web example under wrk with 2 s tokens (bench/web_load.sh; figures in bench/README.md).
web_seconds=30
((${#quick[@]})) && web_seconds=10
"$root/bench/web_load.sh" --duration "$web_seconds" --json "$out/web_load.json" || { ((status == 3)) || status=1; }

{
    printf '{"date":"%s","machine":"%s, %s cores","rounds":%s,"benchmarks":[' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uname -srm)" "$(nproc)" "$rounds"
    sep=""
    for name in "${names[@]}"; do
        printf '%s' "$sep"
        tr -d '\n' <"$out/$name.json"
        sep=","
    done
    printf ']}\n'
} >"$out/results.json"

gnuplot <<PLOT
set terminal svg size 900,420 dynamic font "sans,11"
set output "$out/herd.svg"
set multiplot layout 1,2 title "Refresh herd: N coroutines, one expired token (median of $rounds rounds)"
set logscale xy
set xlabel "callers N"
set ylabel "wall time from release to last caller resumed (ms)"
set key top left
plot "$out/herd.json.dat" using 1:2 with linespoints title "token_cache, 1 thread", \
     "" using 1:3 with linespoints title "serialised, 1 thread", \
     "" using 1:6 with linespoints title "token_cache, 2 threads", \
     "" using 1:7 with linespoints title "serialised, 2 threads"
set ylabel "wake-up cost per waiter (ns)"
unset logscale y
plot "$out/herd.json.dat" using 1:5 with linespoints title "token_cache, 1 thread", \
     "" using 1:4 with linespoints title "bare wake-up loop, 1 thread", \
     "" using 1:9 with linespoints title "token_cache, 2 threads", \
     "" using 1:8 with linespoints title "bare wake-up loop, 2 threads"
unset multiplot
set output "$out/spreading.svg"
set terminal svg size 700,380 dynamic font "sans,11"
unset logscale
set title "Refresh-ahead of accounts issued at the same instant"
set xlabel "share of the token lifetime (%)"
set ylabel "background refreshes started"
set style fill solid 0.6
set boxwidth 0.8
plot "$out/accounts.json.dat" using 1:2 with boxes notitle
PLOT
echo "Results: $out/results.json, $out/herd.svg, $out/spreading.svg"
exit "$status"
