"""wrk against the web example while the emulator's tokens live 2 s.

The library-backed endpoint (POST /accounts/{id}/tasks: token cache + api_client) and the same
server's fixed-token endpoint (POST /baseline/tasks: the same upstream request, no cache) are each
loaded with `connections` connections for `duration` seconds. Checked (both forms): no non-2xx
answer and no socket error, tokens rotated during the run, and exactly one refresh per rotation:
the cache's refreshes = its rotations = the refreshes the emulator received and answered.
Printed: requests/s, p50 and p99 of both, and their ratio. Throughput is reported, never asserted
(bench/web_load.sh runs the 30 s form and records it).

usage: /usr/bin/python3 load_test.py WEB_APP_BINARY [--duration S] [--connections N] [--threads N]
                                     [--json FILE]
"""
import argparse
import json
import os
import re
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


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print("ok: %s" % what)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="web_app's io_context threads")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: scripts/run.sh test installs it")

    root = tempfile.mkdtemp(prefix="web_app_load_")
    script = os.path.join(root, "post.lua")
    with open(script, "w") as f:
        f.write(POST_SCRIPT)
    app = WebApp(args.binary, os.path.join(root, "app"), "--auto-consent", "--demo-account",
                 "--token-lifetime", str(TOKEN_LIFETIME_SECONDS), "--expiry-margin", "0",
                 "--threads", str(args.threads))
    try:
        check(app.demo_account is not None, "the demo account is connected")
        cached = run_wrk("%s/accounts/%s/tasks" % (app.origin, app.demo_account), script, args.duration,
                         args.connections)
        after_cached = app.metrics()
        baseline = run_wrk(app.origin + "/baseline/tasks", script, args.duration, args.connections)
        metrics = app.metrics()
    finally:
        app.stop()
        shutil.rmtree(root, ignore_errors=True)

    print("\n%-24s %12s %10s %10s %8s" % ("endpoint", "requests/s", "p50 ms", "p99 ms", "non-2xx"))
    for name, r in (("/accounts/{id}/tasks", cached), ("/baseline/tasks", baseline)):
        print("%-24s %12.0f %10.2f %10.2f %8d" % (name, r["requests_per_second"], r["p50_ms"], r["p99_ms"],
                                                   r["non_2xx"]))
    ratio = cached["requests_per_second"] / baseline["requests_per_second"]
    print("library / fixed-token throughput: %.3f (target >= 0.9)\n" % ratio)
    refreshes = metrics["apollo_oauth_cache_refreshes_total"]
    rotations = metrics["apollo_oauth_cache_rotations_total"]
    print("token lifetime %d s; during the library run: %d rotations, %d API calls, %d 401s at the emulator"
          % (TOKEN_LIFETIME_SECONDS, after_cached["apollo_oauth_cache_rotations_total"],
             after_cached["emulator_api_requests_total"], after_cached["emulator_unauthorized_total"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"duration_s": args.duration, "connections": args.connections, "threads": args.threads,
                       "token_lifetime_s": TOKEN_LIFETIME_SECONDS, "library": cached, "baseline": baseline,
                       "ratio": ratio, "rotations": rotations, "refreshes": refreshes}, f, indent=2)

    for name, r in (("library", cached), ("baseline", baseline)):
        check(r["requests"] > 0, "%s: requests were answered" % name)
        check(r["non_2xx"] == 0, "%s: no non-2xx answer" % name)
        check(all(v == 0 for v in r["socket_errors"].values()), "%s: no socket error %s" % (name, r["socket_errors"]))
    check(after_cached["apollo_oauth_cache_rotations_total"] >= 1, "tokens rotated during the library run")
    check(refreshes == rotations, "the cache sent one refresh per rotation (%d, %d)" % (refreshes, rotations))
    check(metrics["emulator_refresh_token_grants_total"] == refreshes,
          "the emulator received exactly the cache's refreshes (%d)" % metrics["emulator_refresh_token_grants_total"])
    check(metrics["emulator_successful_refreshes_total"] == rotations,
          "every refresh the emulator answered became a rotation")
    check(metrics["apollo_oauth_cache_refresh_failures_total"] == 0, "no refresh failed")


if __name__ == "__main__":
    main()
