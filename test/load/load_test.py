"""wrk against the web example while the emulator's tokens live 2 s.

Both endpoints are called in one browser session (its cookie in every request): they act only for
a session, the library-backed one for the emulator's demo account (--demo-account), which any
session may use.

The library-backed endpoint (POST /accounts/{id}/tasks: token cache + api_client) and the same
server's fixed-token endpoint (POST /baseline/tasks: the same upstream request, no cache) are each
loaded with `connections` connections for `duration` seconds, in `rounds` interleaved rounds. Checked (both forms): no non-2xx
answer and no socket error, tokens rotated during the run, and exactly one refresh per rotation:
the cache's refreshes = its rotations = the refreshes the emulator received and answered.
Printed: requests/s, p50 and p99 of both, and their ratio. Throughput is reported, never asserted
(bench/web_load.sh runs the 30 s form and records it).

With --redis the app keeps its pairs in a redis-server this script starts on a free port (AOF,
appendfsync always), as processes on several hosts would share them.

usage: /usr/bin/python3 load_test.py WEB_APP_BINARY [--duration S] [--rounds N] [--connections N]
                                     [--threads N] [--json FILE] [--redis]
"""
import argparse
import json
import os
import re
import socket
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
from web_app_process import WebApp  # noqa: E402

TOKEN_LIFETIME_SECONDS = 2

POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"contact_ids":["c1","c2"]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Cookie"] = "%s"
"""


def to_ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output):
    result = {"non_2xx": 0, "socket_errors": {}}
    for line in output.splitlines():
        line = line.strip()
        if m := re.match(r"(\d+)% +(\S+)$", line):
            result["p%s_ms" % m.group(1)] = to_ms(m.group(2))
        elif m := re.match(r"(\d+) requests in", line):
            result["requests"] = int(m.group(1))
        elif m := re.match(r"Requests/sec: +([\d.]+)", line):
            result["requests_per_second"] = float(m.group(1))
        elif m := re.match(r"Non-2xx or 3xx responses: (\d+)", line):
            result["non_2xx"] = int(m.group(1))
        elif line.startswith("Socket errors:"):
            result["socket_errors"] = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", line)}
    return result


def run_wrk(url, script, duration, connections):
    command = ["wrk", "-t", "2", "-c", str(connections), "-d", "%ds" % duration, "--latency", "-s", script, url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = parse_wrk(output)
    if "requests_per_second" not in result or "p99_ms" not in result:
        raise RuntimeError("unexpected wrk output:\n" + output)
    return result


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def combine(rounds):
    """Requests/s over all rounds; p50/p99 the median of the rounds'; errors summed."""
    errors = {}
    for r in rounds:
        for k, v in r["socket_errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {"requests": sum(r["requests"] for r in rounds),
            "requests_per_second": sum(r["requests_per_second"] for r in rounds) / len(rounds),
            "p50_ms": median([r["p50_ms"] for r in rounds]), "p99_ms": median([r["p99_ms"] for r in rounds]),
            "non_2xx": sum(r["non_2xx"] for r in rounds), "socket_errors": errors, "rounds": rounds}


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print("ok: %s" % what)


def check_routes(app, cookie):
    """The routes the load uses answer as documented, before any load."""
    check(app.get("/healthz") == (200, "ok\n"), "GET /healthz is ok")
    tasks = "/accounts/%s/tasks" % app.demo_account
    status, body = app.request(tasks, "POST", b'{"contact_ids":["a","b","c"]}', "application/json", cookie)
    check((status, json.loads(body)) == (200, {"created": 3}), "POST %s reaches Apollo's bulk_create" % tasks)
    status, _ = app.request(tasks, "POST", b"{}", "text/plain", cookie)
    check(status == 415, "a non-JSON POST is refused (no cross-site form can send JSON)")
    status, body = app.request("/accounts/nobody/tasks", "POST", b"{}", "application/json", cookie)
    check(status == 404 and json.loads(body)["error"] == "unknown_account", "an unknown account is 404")
    status, body = app.request("/baseline/tasks", "POST", b"{}", "application/json", cookie)
    check(status == 200, "POST /baseline/tasks reaches Apollo with the fixed token")
    for path in (tasks, "/baseline/tasks"):
        status, _ = app.request(path, "POST", b"{}", "application/json")
        check(status == 401, "POST %s without a session is refused (401)" % path)


class RedisServer:
    """redis-server on a free port of 127.0.0.1, its AOF in `workdir`; ready once it says so."""

    def __init__(self, workdir):
        if shutil.which("redis-server") is None:
            sys.exit("redis-server is missing: scripts/run.sh test installs it")
        os.makedirs(workdir, exist_ok=True)
        with socket.socket() as s:  # a free port (released: redis-server binds it next)
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", workdir, "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--logfile", ""],
            stdout=subprocess.PIPE, text=True)
        for line in self.process.stdout:  # its own "ready" line is the synchronisation
            if "Ready to accept connections" in line:
                return
        sys.exit("redis-server exited before it was ready (%s)" % self.process.wait())

    def hget(self, key, field):
        out = subprocess.run(["redis-cli", "-p", str(self.port), "HGET", key, field], capture_output=True,
                             text=True, check=True).stdout.strip()
        return int(out) if out.isdigit() else out

    def stop(self):
        self.process.terminate()
        self.process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (duration split over them)")
    parser.add_argument("--threads", type=int, default=2, help="web_app's io_context threads")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--redis", action="store_true", help="the Redis token store (a redis-server of its own)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: scripts/run.sh test installs it")

    root = tempfile.mkdtemp(prefix="web_app_load_")
    redis = RedisServer(os.path.join(root, "redis")) if args.redis else None
    store = "redis://127.0.0.1:%d/0?key_prefix=web_load:" % redis.port if redis else None
    script = os.path.join(root, "post.lua")
    app = WebApp(args.binary, os.path.join(root, "app"), "--auto-consent", "--demo-account",
                 "--token-lifetime", str(TOKEN_LIFETIME_SECONDS), "--expiry-margin", "0",
                 "--threads", str(args.threads), store=store)
    try:
        check(app.demo_account is not None, "the demo account is connected")
        cookie = app.new_session()
        with open(script, "w") as f:
            f.write(POST_SCRIPT % cookie)
        check_routes(app, cookie)
        cached_url = "%s/accounts/%s/tasks" % (app.origin, app.demo_account)
        # Interleaved rounds, so that a neighbour's load on the machine falls on both endpoints.
        cached_rounds, baseline_rounds = [], []
        rotations_in_cached_runs = 0
        seconds = max(1, args.duration // args.rounds)
        for _ in range(args.rounds):
            before = app.metrics()["apollo_oauth_cache_rotations_total"]
            cached_rounds.append(run_wrk(cached_url, script, seconds, args.connections))
            rotations_in_cached_runs += app.metrics()["apollo_oauth_cache_rotations_total"] - before
            baseline_rounds.append(run_wrk(app.origin + "/baseline/tasks", script, seconds, args.connections))
        metrics = app.metrics()
    finally:
        status = app.stop()
        stored_generation = redis.hget("web_load:{%s}" % app.demo_account, "gen") if redis else None
        if redis:
            redis.stop()
        shutil.rmtree(root, ignore_errors=True)
    check(status == 0, "web_app stopped cleanly on SIGTERM (exit status %s)" % status)
    cached = combine(cached_rounds)
    baseline = combine(baseline_rounds)
    print("\n%-24s %12s %10s %10s %8s" % ("endpoint", "requests/s", "p50 ms", "p99 ms", "non-2xx"))
    for name, r in (("/accounts/{id}/tasks", cached), ("/baseline/tasks", baseline)):
        print("%-24s %12.0f %10.2f %10.2f %8d" % (name, r["requests_per_second"], r["p50_ms"], r["p99_ms"],
                                                   r["non_2xx"]))
    ratio = cached["requests_per_second"] / baseline["requests_per_second"]
    round_ratios = [c["requests_per_second"] / b["requests_per_second"] for c, b in zip(cached_rounds, baseline_rounds)]
    print("library / fixed-token throughput: %.3f (target >= 0.9); per round: %s\n"
          % (ratio, " ".join("%.2f" % r for r in round_ratios)))
    refreshes = metrics["apollo_oauth_cache_refreshes_total"]
    rotations = metrics["apollo_oauth_cache_rotations_total"]
    print("%d rounds of %d s per endpoint, interleaved; token lifetime %d s: %d rotations in the library runs, "
          "%d refreshes in all, %d API calls at the emulator, %d of them answered 401 (old token in flight at "
          "a rotation, retried by api_client)"
          % (args.rounds, seconds, TOKEN_LIFETIME_SECONDS, rotations_in_cached_runs, refreshes,
             metrics["emulator_api_requests_total"], metrics["emulator_unauthorized_total"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"duration_s": args.duration, "rounds": args.rounds, "round_ratios": round_ratios, "connections": args.connections, "threads": args.threads,
                       "token_lifetime_s": TOKEN_LIFETIME_SECONDS, "library": cached, "baseline": baseline,
                       "ratio": ratio, "rotations": rotations, "refreshes": refreshes}, f, indent=2)

    for name, r in (("library", cached), ("baseline", baseline)):
        check(r["requests"] > 0, "%s: requests were answered" % name)
        check(r["non_2xx"] == 0, "%s: no non-2xx answer" % name)
        check(all(v == 0 for v in r["socket_errors"].values()), "%s: no socket error %s" % (name, r["socket_errors"]))
    check(rotations_in_cached_runs >= 1, "tokens rotated during the library runs")
    check(refreshes == rotations, "the cache sent one refresh per rotation (%d, %d)" % (refreshes, rotations))
    check(metrics["emulator_refresh_token_grants_total"] == refreshes,
          "the emulator received exactly the cache's refreshes (%d)" % metrics["emulator_refresh_token_grants_total"])
    check(metrics["emulator_successful_refreshes_total"] == rotations,
          "every refresh the emulator answered became a rotation")
    check(metrics["apollo_oauth_cache_refresh_failures_total"] == 0, "no refresh failed")
    if redis:
        # Every rotation was committed to Redis: the record's generation counts them (the demo
        # account was stored as generation 1).
        check(stored_generation == rotations + 1,
              "Redis holds the last rotation (generation %s, %d rotations)" % (stored_generation, rotations))


if __name__ == "__main__":
    main()
