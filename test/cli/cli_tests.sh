#!/usr/bin/env bash
# End-to-end tests of apollo-oauth, driven as a user would drive it, against
# `apollo-oauth emulator --json` running as a separate process.
#   cli_tests.sh APOLLO_OAUTH CLI_TEST_HELPER WORK_DIR [FAIL_READ_BACK_SO]
# Synchronisation is by events only: the emulator's JSON line, login's "listening" line, the
# "Waiting for another apollo-oauth process refreshing" line; `read -t` timeouts are guards, not waits.
set -uo pipefail

tool=$1
helper=$2
work=$3
fail_read_back=${4:-}  # an LD_PRELOAD shim (fail_read_back.cpp)
rm -rf "$work"
mkdir -p "$work/logs"
logs=$work/logs
tokens=$work/tokens
failures=0
checks=0

check() {  # check DESCRIPTION COMMAND...
    local what=$1
    shift
    checks=$((checks + 1))
    if "$@"; then
        echo "ok   $what"
    else
        echo "FAIL $what"
        failures=$((failures + 1))
    fi
}
contains() { grep -qF -- "$2" "$1"; }
lacks() { ! grep -qF -- "$2" "$1"; }
json_ok() { "$helper" json < "$1"; }
field() { "$helper" json "$2" < "$1"; }  # field FILE NAME
mode_of() { stat -c %a "$1"; }

# run NAME [args...]: the tool with stdout/stderr captured in logs/NAME.{out,err}; sets $rc.
run() {
    local name=$1
    shift
    "$tool" "$@" > "$logs/$name.out" 2> "$logs/$name.err" < /dev/null
    rc=$?
}

# ---------------------------------------------------------------- the emulator, as a process
mkfifo "$work/emu.in" "$work/emu.out"
"$tool" emulator --json --redirect-uri "https://127.0.0.1:$("$helper" free-port)/callback" \
    < "$work/emu.in" > "$work/emu.out" 2> "$logs/emulator.err" &
emulator_pid=$!
exec {emu_in}> "$work/emu.in"
exec {emu_out}< "$work/emu.out"
stop_emulator() {
    if [ -n "${emulator_pid:-}" ]; then
        kill -TERM "$emulator_pid" 2> /dev/null
        wait "$emulator_pid"
        emulator_rc=$?
        emulator_pid=
    fi
}
trap stop_emulator EXIT

# emulator_command LINE: sends a stdin command and prints its one-line JSON answer.
emulator_command() {
    echo "$1" >&"$emu_in"
    local answer
    read -r -t 30 answer <&"$emu_out" && echo "$answer"
}
refresh_grants() { emulator_command stats | "$helper" json stats.refresh_token_grants; }

if ! read -r -t 60 emulator_line <&"$emu_out"; then
    echo "FAIL the emulator did not print its JSON line"
    exit 1
fi
echo "$emulator_line" > "$logs/emulator.out"
check "emulator --json prints one JSON object" json_ok "$logs/emulator.out"
ca_file=$(field "$logs/emulator.out" ca_file)
secret_file=$(field "$logs/emulator.out" client_secret_file)
loopback_redirect=$(field "$logs/emulator.out" redirect_uris | sed -E 's/.*"(https:\/\/127[^"]*)".*/\1/')
check "emulator: the client secret file is 0600" test "$(mode_of "$secret_file")" = 600
check "emulator: the CA file exists" test -s "$ca_file"
check "emulator: the stats command answers JSON" test -n "$(refresh_grants)"

# disposition_has PID SigIgn|SigCgt NUMBER: whether the process ignores (catches) that signal now.
disposition_has() {
    local mask
    mask=$(awk -v name="$2:" '$1 == name { print $2 }' "/proc/$1/status")
    [ -n "$mask" ] && (((16#$mask >> ($3 - 1)) & 1))
}
# This script started the emulator as a background job, so with SIGINT ignored (job control is
# off): it stays ignored, SIGTERM is handled (read from /proc once its JSON line is out: its
# signals are set before). SIGINT itself is sent at the end.
check "emulator started with SIGINT ignored: SIGINT is still ignored" \
    disposition_has "$emulator_pid" SigIgn "$(kill -l INT)"
check "emulator: SIGTERM is handled" disposition_has "$emulator_pid" SigCgt "$(kill -l TERM)"

export APOLLO_CLIENT_ID=$(field "$logs/emulator.out" client_id)
export APOLLO_CLIENT_SECRET_FILE=$secret_file
export APOLLO_CA_FILE=$ca_file
export APOLLO_AUTHORIZE_URL=$(field "$logs/emulator.out" authorize_url)
export APOLLO_TOKEN_URL=$(field "$logs/emulator.out" token_url)
export APOLLO_PROFILE_URL=$(field "$logs/emulator.out" profile_url)
export APOLLO_API_BASE=$(field "$logs/emulator.out" api_base)
export APOLLO_REDIRECT_URI=$loopback_redirect
export APOLLO_TOKEN_DIR=$tokens
unset APOLLO_CLIENT_SECRET APOLLO_ACCOUNT

# ---------------------------------------------------------------- command line and configuration
run help --help
check "--help exits 0 and lists the exit codes" test $rc = 0 -a -n "$(grep 're-authorization' "$logs/help.out")"
for command in login authorize-url exchange token refresh profile request emulator; do
    run "help-$command" "$command" --help
    check "$command --help exits 0 with usage and exit codes" \
        test $rc = 0 -a -n "$(grep "usage: apollo-oauth $command" "$logs/help-$command.out")" \
        -a -n "$(grep 'Exit codes:' "$logs/help-$command.out")"
done
run no-command
check "no command: exit 2" test $rc = 2
run unknown frobnicate
check "unknown subcommand: exit 2, named" test $rc = 2 -a -n "$(grep "unknown command 'frobnicate'" "$logs/unknown.err")"
run bad-flag token --frobnicate=1
check "bad flag: exit 2, named" test $rc = 2 -a -n "$(grep 'unknown option --frobnicate' "$logs/bad-flag.err")"
run argv-secret token --client-secret=argv-secret-value-42
check "--client-secret on argv: exit 2" test $rc = 2
check "--client-secret on argv: says where a secret goes" contains "$logs/argv-secret.err" APOLLO_CLIENT_SECRET
check "--client-secret on argv: the value is not echoed" lacks "$logs/argv-secret.err" argv-secret-value-42
run argv-secret-2 login --client-secret argv-secret-value-43
check "--client-secret VALUE: exit 2, value not echoed" test $rc = 2 -a -z "$(grep argv-secret-value-43 "$logs/argv-secret-2.err")"
# A secret typed where its file's name belongs is not echoed: the messages name the option or the
# variable (and the system's reason), never the value.
run secret-as-file token --client-secret-file some-secret-looking-value-44
check "--client-secret-file that cannot be read: exit 2, names the option and the reason" \
    test $rc = 2 -a -n "$(grep -F -- '--client-secret-file: No such file or directory' "$logs/secret-as-file.err")"
check "--client-secret-file that cannot be read: the value is not echoed" \
    test -z "$(cat "$logs/secret-as-file.out" "$logs/secret-as-file.err" | grep -F some-secret-looking-value-44)"
APOLLO_CLIENT_SECRET_FILE=some-secret-looking-value-45 run secret-as-env-file token
check "APOLLO_CLIENT_SECRET_FILE that cannot be read: exit 2, names the variable" \
    test $rc = 2 -a -n "$(grep -F 'APOLLO_CLIENT_SECRET_FILE: No such file or directory' "$logs/secret-as-env-file.err")"
check "APOLLO_CLIENT_SECRET_FILE that cannot be read: the value is not echoed" \
    test -z "$(cat "$logs/secret-as-env-file.out" "$logs/secret-as-env-file.err" | grep -F some-secret-looking-value-45)"
if [ "$("$tool" token --help | grep -c 'NOT IN THIS BUILD')" = 0 ]; then
    run redis-password-as-file token --store redis://127.0.0.1:1/0 --redis-password-file some-secret-looking-value-46
    check "--redis-password-file that cannot be read: exit 2, the value is not echoed" \
        test $rc = 2 -a -n "$(grep -F -- '--redis-password-file: No such file' "$logs/redis-password-as-file.err")" \
        -a -z "$(cat "$logs/redis-password-as-file.out" "$logs/redis-password-as-file.err" | grep -F some-secret-looking-value-46)"
fi
APOLLO_CLIENT_SECRET_FILE= run no-secret token
check "missing secret: exit 2 with a clear message" test $rc = 2 -a -n "$(grep 'no client secret' "$logs/no-secret.err")"
run missing-value token --account
check "option without its value: exit 2" test $rc = 2 -a -n "$(grep 'needs a value' "$logs/missing-value.err")"
run bad-number login --timeout 0
check "a bad number of seconds: exit 2, named" test $rc = 2 -a -n "$(grep 'timeout needs a positive' "$logs/bad-number.err")"
run request-args request GET
check "request without PATH: exit 2" test $rc = 2
run no-account token
check "token for an account never authorized: exit 5" test $rc = 5
run no-account-json token --json
check "--json errors: one JSON object on stderr with the exit code" \
    test "$(field "$logs/no-account-json.err" error.exit_code)" = 5
# Usage errors and exceptions too, not only the failures a command reports itself.
run json-usage token --json --client-secret-file /nonexistent
check "--json, an unreadable secret file (usage error): stderr is one JSON object, exit 2" \
    test $rc = 2 -a "$(field "$logs/json-usage.err" error.exit_code)" = 2
run json-bad-flag token --json --frobnicate
check "--json, an unknown option: stderr is one JSON object naming the command" \
    test $rc = 2 -a "$(field "$logs/json-bad-flag.err" error.command)" = token
run json-unknown-command frobnicate --json
check "--json, an unknown command: stderr is one JSON object" \
    test $rc = 2 -a "$(field "$logs/json-unknown-command.err" error.exit_code)" = 2
run json-exception token --json --token-dir /dev/null/tokens
check "--json, a token directory that cannot be made (an exception): stderr is one JSON object, exit 1" \
    test $rc = 1 -a "$(field "$logs/json-exception.err" error.exit_code)" = 1

# ---------------------------------------------------------------- login, the browser scripted
# login_with NAME BROWSER_TRUST LOGIN_ARGS...: starts login --json, reads its "listening" line,
# plays the browser (authorize at the emulator, then the redirect to the listener), and waits.
# login runs under "${login_prefix[@]}" (none by default), and "$before_browser PID" runs once it
# listens.
login_prefix=()
before_browser=:
login_with() {
    local name=$1 trust=$2
    shift 2
    mkfifo "$work/$name.fifo"
    "${login_prefix[@]}" "$tool" login --json --timeout 60 "$@" > "$work/$name.fifo" 2> "$logs/$name.err" < /dev/null &
    local pid=$!
    exec {login_out}< "$work/$name.fifo"
    read -r -t 60 listening <&"$login_out"
    echo "$listening" > "$logs/$name.out"
    "$before_browser" "$pid"
    local url fingerprint redirect
    url=$(field "$logs/$name.out" authorize_url)
    fingerprint=$(field "$logs/$name.out" certificate_sha256)
    redirect=$("$helper" get --cacert "$ca_file" "$url" | sed -n 2p)
    if [ "$trust" = pin ]; then
        trust_args=(--pin-sha256 "$fingerprint")
    else
        trust_args=(--cacert "$trust")
    fi
    # A redirect with a foreign state first: answered 400, and login keeps waiting.
    forged=$("$helper" get "${trust_args[@]}" "${loopback_redirect}?code=forged&state=forged" | head -1)
    # A request whose chunked trailer is past what the listener's parser holds: refused (or its
    # answer lost to the reset), and login keeps waiting (it used to throw out of its io_context).
    hostile=$("$helper" get-with-huge-trailer "${trust_args[@]}" "$loopback_redirect" | head -1)
    delivered=$("$helper" get "${trust_args[@]}" "$redirect" | head -1)
    cat <&"$login_out" >> "$logs/$name.out"
    exec {login_out}<&-
    wait $pid
    rc=$?
}

login_with login pin --account alice --scope contacts_search --scope person_read
check "login: exit 0" test $rc = 0
check "login: shows what it waits for" contains "$logs/login.err" "Waiting for the browser to be redirected to $loopback_redirect"
check "login: a redirect with another state is refused with 400" test "$forged" = 400
check "login: a request with a 70 KB trailer is refused, not served" test "$hostile" = 400 -o "$hostile" = none
check "login: the listener answers the real redirect with 200" test "$delivered" = 200
check "login --json: both lines parse" bash -c "head -1 '$logs/login.out' | '$helper' json && tail -1 '$logs/login.out' | '$helper' json"
check "login: the granted scopes are reported" bash -c "tail -1 '$logs/login.out' | grep -q contacts_search"
alice_stem=$(printf %s alice | sha256sum | cut -d' ' -f1)
check "login: the token directory is 0700" test "$(mode_of "$tokens")" = 700
check "login: the token file is 0600" test "$(mode_of "$tokens/$alice_stem.json")" = 600
check "login: the pending state is used up" test ! -e "$tokens/$alice_stem.pending.json"

"$helper" make-cert "$work/listener.crt" "$work/listener.key"
login_with login-cert "$work/listener.crt" --account carol --pkce --listen-cert "$work/listener.crt" \
    --listen-key "$work/listener.key"
check "login with --listen-cert/--listen-key and --pkce: exit 0" test $rc = 0 -a "$delivered" = 200

# A signal ignored when login was started stays ignored while it waits for the browser (POSIX;
# what `nohup`, `trap '' TERM` and a script's background jobs rely on): SIGTERM and SIGINT sent once
# it listens (its signal handling is set before that line is printed) neither cancel the wait nor
# kill it; the forged redirect and the browser's are then served, and the login completes.
# ignore_and_exec: `trap ''` sets SIG_IGN, which exec keeps.
login_prefix=(bash -c 'trap "" INT TERM && exec "$@"' ignore_and_exec)
signal_listener() {
    kill -TERM "$1"
    kill -INT "$1"
}
before_browser=signal_listener
login_with login-ignored pin --account ignoring
login_prefix=()
before_browser=:
check "login started with SIGTERM and SIGINT ignored: they do not cancel its wait (exit $rc, status $delivered)" \
    test $rc = 0 -a "$forged" = 400 -a "$delivered" = 200
check "login started with SIGTERM and SIGINT ignored: nothing said of a cancellation" \
    test -z "$(grep -i -e cancel -e interrupt "$logs/login-ignored.err")"
check "login started with SIGINT ignored: it does not offer Ctrl-C" lacks "$logs/login-ignored.err" "Ctrl-C"
check "login started with SIGTERM and SIGINT ignored: the tokens are stored" \
    test -s "$tokens/$(printf %s ignoring | sha256sum | cut -d' ' -f1).json"

emulator_command "deny-consent on" > /dev/null
login_with login-denied pin --account erin
emulator_command "deny-consent off" > /dev/null
check "login refused by the user: exit 3" test $rc = 3 -a "$delivered" = 400
check "login refused by the user: the server's error on stderr" contains "$logs/login-denied.err" access_denied
check "login refused by the user: no tokens stored" \
    test ! -e "$tokens/$(printf %s erin | sha256sum | cut -d' ' -f1).json"

# login out of descriptors: connections that never send a request (each held by login for up to
# 30 s) use up its 48; the accepts that fail meanwhile are retried after a pause, so the browser's
# redirect, once they close, is still served. login's accept loop used to end at the first one,
# and login then waited out its timeout. Skipped under a sanitizer, as the emulator's case below.
# port_of URL: the port of an https://host:port/... URL.
port_of() { echo "$1" | sed -E 's#^https://[^/]*:([0-9]+)/.*#\1#'; }
# open_flood PORT: 96 connections to 127.0.0.1:PORT that send nothing, in flood_fds; close_flood.
open_flood() {
    local fd
    flood_fds=()
    for _ in $(seq 96); do
        exec {fd}<> "/dev/tcp/127.0.0.1/$1" && flood_fds+=("$fd")
    done 2> /dev/null
}
close_flood() {
    local fd
    for fd in "${flood_fds[@]}"; do
        exec {fd}>&-
    done
}
# flood_listener PID: floods the listener, waits (a condition on /proc, polled) until login holds
# all its descriptors with connections still queued, then closes the flood.
flood_listener() {
    local pid=$1
    open_flood "$(port_of "$loopback_redirect")"
    flooded=no
    for _ in $(seq 1000); do  # up to 10 s
        if [ "$(ls "/proc/$pid/fd" | wc -l)" -ge 48 ]; then
            flooded=yes
            break
        fi
        sleep 0.01  # the poll's pace: it shares the cores with the login it watches
    done
    close_flood
}
if [ -z "${APOLLO_OAUTH_SANITIZE:-}" ]; then
    login_prefix=(prlimit --nofile=48)
    before_browser=flood_listener
    login_with login-fds pin --account frank
    login_prefix=()
    before_browser=:
    check "login out of descriptors: all 48 were in use" test "$flooded" = yes
    check "login out of descriptors: the redirect is served once they are back (exit $rc, status $delivered)" \
        test $rc = 0 -a "$delivered" = 200
fi

# login --open starts xdg-open (found on PATH: here a script that saves its descriptors, then its
# environment) without the tool's variables: the client secret and the Redis password must not
# reach the browser; nor any socket of login's (its listener, inherited, kept the port taken).
mkdir -p "$work/fake-bin"
printf '#!/bin/sh\nls -l /proc/$$/fd > "%s.tmp" && mv "%s.tmp" "%s"\nenv > "%s.tmp" && mv "%s.tmp" "%s"\n' \
    "$work/opener.fds" "$work/opener.fds" "$work/opener.fds" \
    "$work/opener.env" "$work/opener.env" "$work/opener.env" > "$work/fake-bin/xdg-open"
chmod +x "$work/fake-bin/xdg-open"
login_prefix=(env -u APOLLO_CLIENT_SECRET_FILE "APOLLO_CLIENT_SECRET=$(cat "$secret_file")"
    APOLLO_REDIS_PASSWORD=redis-password-in-env-47 "PATH=$work/fake-bin:$PATH")
login_with login-open pin --account gina --open
login_prefix=()
check "login --open: exit 0" test $rc = 0
for _ in $(seq 1000); do  # up to 10 s: xdg-open runs on its own, login does not wait for it
    [ -e "$work/opener.env" ] && break
    sleep 0.01  # the poll's pace
done
check "login --open: xdg-open was started, with the rest of the environment" grep -q '^PATH=' "$work/opener.env"
check "login --open: no APOLLO_* variable reaches the browser" test -z "$(grep '^APOLLO_' "$work/opener.env")"
check "login --open: neither the client secret nor the Redis password reaches it" \
    test -z "$(grep -F -e "$(cat "$secret_file")" -e redis-password-in-env-47 "$work/opener.env")"
check "login --open: xdg-open inherits no socket (its descriptors: $(awk '{ print $NF }' "$work/opener.fds" | xargs))" \
    test -s "$work/opener.fds" -a -z "$(grep -F 'socket:' "$work/opener.fds")"

# A browser that outlives login (here xdg-open leaves `sleep 30` behind, as a browser it started
# would stay, and writes its pid to a FIFO the test reads): the next login must still be able to
# listen on the redirect URI's port.
mkdir -p "$work/fake-bin-lingering"
mkfifo "$work/lingering.fifo"
printf '#!/bin/sh\nsleep 30 &\necho $! > "%s"\n' "$work/lingering.fifo" > "$work/fake-bin-lingering/xdg-open"
chmod +x "$work/fake-bin-lingering/xdg-open"
exec {lingering}<> "$work/lingering.fifo"  # read-write: opening it does not wait for the writer
login_prefix=(env "PATH=$work/fake-bin-lingering:$PATH")
login_with login-open-lingering pin --account lingering --open
login_prefix=()
lingering_pid=
read -r -t 30 lingering_pid <&"$lingering"
exec {lingering}<&-
run login-after-lingering login --account lingering --timeout 1
check "login after a browser that outlived login --open: listens again (exit $rc, 6 at its timeout)" \
    test $rc = 6 -a -n "$lingering_pid" -a -z "$(grep -i 'address already in use' "$logs/login-after-lingering.err")"
[ -n "$lingering_pid" ] && kill "$lingering_pid" 2> /dev/null

# An `authorize-url` for the account while login waits (here run by xdg-open, before the test plays
# the browser: it says so on a FIFO) saves a newer pending authorization; login, once its own
# redirect is in, must leave it for that authorize-url's `exchange`, not delete whatever is there.
mkdir -p "$work/fake-bin-newer"
mkfifo "$work/newer-pending.fifo"
cat > "$work/fake-bin-newer/xdg-open" << EOF
#!/bin/sh
APOLLO_CLIENT_ID='$APOLLO_CLIENT_ID' APOLLO_REDIRECT_URI='$APOLLO_REDIRECT_URI' \\
    APOLLO_AUTHORIZE_URL='$APOLLO_AUTHORIZE_URL' APOLLO_TOKEN_DIR='$tokens' \\
    '$tool' authorize-url --json --account newer-pending > '$logs/newer-pending.out' 2> '$logs/newer-pending.err'
echo \$? > '$work/newer-pending.fifo'
EOF
chmod +x "$work/fake-bin-newer/xdg-open"
exec {newer}<> "$work/newer-pending.fifo"
newer_rc=
await_newer_pending() { read -r -t 30 newer_rc <&"$newer"; }
login_prefix=(env "PATH=$work/fake-bin-newer:$PATH")
before_browser=await_newer_pending
login_with login-newer-pending pin --account newer-pending --open
login_prefix=()
before_browser=:
exec {newer}<&-
newer_pending=$tokens/$(printf %s newer-pending | sha256sum | cut -d' ' -f1).pending.json
check "login with an authorize-url run while it waited: both exit 0 (login $rc, authorize-url $newer_rc)" \
    test $rc = 0 -a "$newer_rc" = 0
check "login with an authorize-url run while it waited: the newer pending authorization is kept" \
    test -e "$newer_pending" -a "$(field "$newer_pending" state)" = "$(field "$logs/newer-pending.out" state)"

# SIGTERM not ignored: once login says it listens, it cancels the wait (exit 6), nothing issued.
mkfifo "$work/login-term.fifo"
"$tool" login --json --account terminated --timeout 60 > "$work/login-term.fifo" 2> "$logs/login-term.err" \
    < /dev/null &
login_pid=$!
exec {login_out}< "$work/login-term.fifo"
read -r -t 60 listening <&"$login_out"
kill -TERM "$login_pid"
cat <&"$login_out" > "$logs/login-term.out"
exec {login_out}<&-
wait "$login_pid"
rc=$?
check "login: SIGTERM while it waits for the browser cancels it (exit $rc)" \
    test $rc = 6 -a -n "$(grep cancelled "$logs/login-term.err")"

# Started with stdin and stdout closed: /dev/null holds both numbers while login waits, so that no
# file or socket it opened took them (a result meant for stdout once went into whatever had).
mkfifo "$work/login-closed.fifo"
"$tool" login --account closed-fds --timeout 60 <&- >&- 2> "$work/login-closed.fifo" &
login_pid=$!
exec {login_err}< "$work/login-closed.fifo"
while read -r -t 60 line <&"$login_err" && echo "$line" >> "$logs/login-closed.err"; do
    [[ $line == Waiting* ]] && break
done
held_in=$(readlink "/proc/$login_pid/fd/0")
held_out=$(readlink "/proc/$login_pid/fd/1")
echo "stdin: $held_in, stdout: $held_out" > "$logs/login-closed.fds"
check "login started with stdin and stdout closed: /dev/null holds both while it waits" \
    test "$held_in" = /dev/null -a "$held_out" = /dev/null
kill -TERM "$login_pid"
cat <&"$login_err" >> "$logs/login-closed.err"
exec {login_err}<&-
wait "$login_pid"
rc=$?
check "login started with stdout closed: cancelled (exit $rc), its URL reported as not written" \
    test $rc = 6 -a -n "$(grep 'writing to standard output failed as well' "$logs/login-closed.err")"

run login-timeout login --account dave --timeout 1
check "login --timeout: exit 6 when no browser comes" test $rc = 6 -a -n "$(grep 'timed out' "$logs/login-timeout.err")"

# ---------------------------------------------------------------- authorize-url + exchange
export APOLLO_ACCOUNT=bob
run authorize authorize-url --json --scope contacts_search --pkce
bob_stem=$(printf %s bob | sha256sum | cut -d' ' -f1)
check "authorize-url --json: exit 0, parses" test $rc = 0 -a -n "$(field "$logs/authorize.out" url)"
check "authorize-url: the pending state file is 0600" test "$(mode_of "$tokens/$bob_stem.pending.json")" = 600
redirect=$("$helper" get --cacert "$ca_file" "$(field "$logs/authorize.out" url)" | sed -n 2p)
code=$(echo "$redirect" | sed -E 's/.*[?&]code=([^&]*).*/\1/')
state=$(echo "$redirect" | sed -E 's/.*[?&]state=([^&]*).*/\1/')
run exchange-wrong-state exchange --code "$code" --state not-the-state
check "exchange with a wrong state: exit 3, says so" \
    test $rc = 3 -a -n "$(grep 'state does not match' "$logs/exchange-wrong-state.err")"
check "exchange with a wrong state leaves the pending state" test -e "$tokens/$bob_stem.pending.json"
"$tool" exchange --json --state "$state" --code - <<< "$code" > "$logs/exchange.out" 2> "$logs/exchange.err"
rc=$?
check "exchange --code - (from stdin) --state: exit 0, JSON" test $rc = 0 -a -n "$(field "$logs/exchange.out" expires_at)"
check "exchange: the scopes granted for the request" \
    test -n "$(field "$logs/exchange.out" scopes | grep contacts_search | grep -v person_read)"
run exchange-replay exchange --redirect-url "$redirect"
check "exchange replayed: exit 3 (the state is used up)" test $rc = 3

# A pending file replaced by a link (to a file of the same content) is not read through it: the
# token directory's files are never opened through a link.
run authorize-linked authorize-url --json
mv "$tokens/$bob_stem.pending.json" "$work/bob-pending.json"
ln -s "$work/bob-pending.json" "$tokens/$bob_stem.pending.json"
linked_redirect=$("$helper" get --cacert "$ca_file" "$(field "$logs/authorize-linked.out" url)" | sed -n 2p)
run exchange-linked exchange --redirect-url "$linked_redirect"
check "exchange: a pending file that is a link is not read (exit 3)" test $rc = 3
rm -f "$tokens/$bob_stem.pending.json" "$work/bob-pending.json"

# Another apollo-oauth keeping the pending lock (stopped with Ctrl-Z, say): exchange gives up with a
# message after 5 s instead of waiting for ever.
exec {pending_held}< "$tokens/$bob_stem.pending.lock"
flock "$pending_held"
"$tool" exchange --redirect-url - <<< "$redirect" > "$logs/exchange-locked.out" 2> "$logs/exchange-locked.err" \
    {pending_held}<&-
rc=$?
exec {pending_held}<&-
check "exchange while another process keeps the pending lock: exit 1, says so" \
    test $rc = 1 -a -n "$(grep 'another apollo-oauth process has kept' "$logs/exchange-locked.err")"

# Under a umask that takes the owner's bits, the pending files are still 0600 (a 0400 lock file
# left by an older version included), so that the next run, not root's, can open them.
frank_stem=$(printf %s frank | sha256sum | cut -d' ' -f1)
: > "$tokens/$frank_stem.pending.lock"
chmod 0400 "$tokens/$frank_stem.pending.lock"
(umask 0377 && APOLLO_ACCOUNT=frank "$tool" authorize-url > "$logs/authorize-umask.out" 2> "$logs/authorize-umask.err")
rc=$?
check "authorize-url under umask 0377: exit 0" test $rc = 0
check "authorize-url under umask 0377: the pending files are 0600" \
    test "$(mode_of "$tokens/$frank_stem.pending.lock")" = 600 -a "$(mode_of "$tokens/$frank_stem.pending.json")" = 600

# A token directory reached through a symbolic link (~/.local/state on another disk, say): every
# command follows it, as the file store does, and checks the directory it leads to. authorize-url
# refused it (its pending file was written with O_NOFOLLOW on the directory) while token used it.
mkdir -m 700 "$work/real-tokens"
ln -s "$work/real-tokens" "$work/linked-tokens"
linked_stem=$(printf %s linked | sha256sum | cut -d' ' -f1)
APOLLO_ACCOUNT=linked run linked-authorize authorize-url --token-dir "$work/linked-tokens"
check "a symlinked --token-dir: authorize-url exits 0, its pending file in the directory linked to" \
    test $rc = 0 -a -e "$work/real-tokens/$linked_stem.pending.json"
redirect=$("$helper" get --cacert "$ca_file" "$(cat "$logs/linked-authorize.out")" | sed -n 2p)
APOLLO_ACCOUNT=linked run linked-exchange exchange --token-dir "$work/linked-tokens" --redirect-url "$redirect"
check "a symlinked --token-dir: exchange exits 0, the tokens in the directory linked to" \
    test $rc = 0 -a -e "$work/real-tokens/$linked_stem.json"
APOLLO_ACCOUNT=linked "$tool" token --token-dir "$work/linked-tokens" > "$work/token-linked.secret-out" \
    2> "$logs/token-linked.err" < /dev/null
check "a symlinked --token-dir: token exits 0" test $? = 0 -a -s "$work/token-linked.secret-out"

# A token directory refused: each of the three reasons says its own remedy (it was one message,
# "chmod 700 it", for all three). Group-writable, through the link above too; a file in its place;
# and, when the tests run as root, a directory of another user's (nobody, uid 65534).
chmod 770 "$work/real-tokens"
APOLLO_ACCOUNT=linked run refused-writable authorize-url --token-dir "$work/linked-tokens"
check "a group-writable token directory: exit 1, its mode and chmod 700 named" \
    test $rc = 1 -a -n "$(grep -F "is writable by its group or by others (mode 0770)" "$logs/refused-writable.err")" \
    -a -n "$(grep -F "chmod 700 $work/linked-tokens" "$logs/refused-writable.err")"
check "a group-writable token directory through a link: the link is named" \
    contains "$logs/refused-writable.err" "(a symbolic link to $work/real-tokens)"
chmod 700 "$work/real-tokens"
: > "$work/file-tokens"
run refused-file authorize-url --token-dir "$work/file-tokens"
check "a file in the token directory's place: exit 1, says it is not a directory" \
    test $rc = 1 -a -n "$(grep -F "$work/file-tokens is not a directory; move what is there away" "$logs/refused-file.err")"
if [ "$(id -u)" = 0 ]; then
    mkdir -m 700 "$work/foreign-tokens"
    chown 65534:65534 "$work/foreign-tokens"
    run refused-foreign authorize-url --token-dir "$work/foreign-tokens"
    check "a token directory of another user's: exit 1, its owner's uid named, no chmod suggested" \
        test $rc = 1 -a -n "$(grep -F "$work/foreign-tokens is owned by uid 65534, not by you (uid 0)" \
        "$logs/refused-foreign.err")" -a -z "$(grep chmod "$logs/refused-foreign.err")"
fi

# ---------------------------------------------------------------- token, refresh, profile, request
export APOLLO_ACCOUNT=alice
grants_before=$(refresh_grants)
"$tool" token > "$work/token.secret-out" 2> "$logs/token.err"
rc=$?
"$tool" token --json > "$work/token-json.secret-out" 2> "$logs/token-json.err"
check "token: exit 0, prints the token" test $rc = 0 -a -s "$work/token.secret-out"
check "token --json: same token, with scopes" test "$(field "$work/token-json.secret-out" access_token)" = \
    "$(cat "$work/token.secret-out")" -a -n "$(field "$work/token-json.secret-out" scopes)"
check "token: a valid token is not refreshed" test "$(refresh_grants)" = "$grants_before"
"$tool" token > /dev/full 2> "$logs/token-full.err"
rc=$?
check "token > /dev/full: exit 1, says the output could not be written" \
    test $rc = 1 -a -n "$(grep 'writing the result to standard output failed' "$logs/token-full.err")"
"$tool" token --json > /dev/full 2> "$logs/token-full-json.err"
check "token --json > /dev/full: the failure is one JSON object with exit code 1" \
    test "$(field "$logs/token-full-json.err" error.exit_code)" = 1
"$tool" --help > /dev/full 2> /dev/null
check "--help > /dev/full: exit 1" test $? = 1

run refresh refresh --json
check "refresh: exit 0, JSON" test $rc = 0 -a -n "$(field "$logs/refresh.out" generation)"
check "refresh: one refresh at the server" test "$(refresh_grants)" = $((grants_before + 1))
"$tool" token > "$work/token-after.secret-out" 2> "$logs/token-after.err"
check "refresh: the token changed" test "$(cat "$work/token-after.secret-out")" != "$(cat "$work/token.secret-out")"
run refresh-narrow refresh --json --scope contacts_search
check "refresh --scope: exactly that scope" test $rc = 0 -a "$(field "$logs/refresh-narrow.out" scopes)" = '["contacts_search"]'
run refresh-wide refresh --scope opportunity_write
check "refresh --scope beyond the grant: exit 4 with the server's error" \
    test $rc = 4 -a -n "$(grep invalid_scope "$logs/refresh-wide.err")"
check "refresh --scope beyond the grant: the server's description" contains "$logs/refresh-wide.err" "exceeds the scope"

# The read-back after a refresh fails (the shim fails every read of a record once one has been
# renamed into place, that is once the refresh is stored): refresh says the pair is stored, exit 1,
# rather than "authorize again" (exit 5), which would have a person throw away a working grant.
# Not under a sanitizer, whose runtime must come first among the preloaded libraries.
if [ -n "$fail_read_back" ] && [ -z "${APOLLO_OAUTH_SANITIZE:-}" ]; then
    grants_before=$(refresh_grants)
    LD_PRELOAD=$fail_read_back run refresh-read-back refresh
    check "refresh whose read-back fails: exit 1, saying the new pair is stored (exit $rc)" \
        test $rc = 1 -a -n "$(grep "was refreshed and its new pair stored, but reading it back" "$logs/refresh-read-back.err")"
    "$tool" token > "$work/token-read-back.secret-out" 2> "$logs/token-read-back.err" < /dev/null
    rc=$?
    check "refresh whose read-back fails: one refresh, whose pair token then uses" \
        test $rc = 0 -a "$(refresh_grants)" = $((grants_before + 1))
fi

run profile profile
check "profile: exit 0, the user" test $rc = 0 -a -n "$(grep 'Ada Lovelace' "$logs/profile.out")"
run profile-json profile --json
check "profile --json: email" test "$(field "$logs/profile-json.out" email)" = ada@example.com
run request request POST /v1/tasks/bulk_create --data '{"tasks":[{"type":"call"}]}'
check "request POST: exit 0, body printed" test $rc = 0 -a -s "$logs/request.out"
check "request POST: the body is JSON" json_ok "$logs/request.out"
run request-json request post /v1/tasks/bulk_create --json --data '{"tasks":[]}'
check "request --json: status 200" test "$(field "$logs/request-json.out" status)" = 200
run request-missing request GET /v1/no_such_endpoint
check "request with a non-2xx answer: exit 7" test $rc = 7
check "request with a non-2xx answer: the body on stdout, the status on stderr" \
    test "$(field "$logs/request-missing.out" error)" = not_found -a "$(cat "$logs/request-missing.err")" = \
    "apollo-oauth request: HTTP 404"
# With --json, a non-2xx answer is a result on stdout (status and body, as a 2xx one) and a failure
# on stderr, one JSON object as every --json failure: exit_code 7, the status as server.http_status.
run request-missing-json request GET /v1/no_such_endpoint --json
check "request --json with a non-2xx answer: exit 7, status and body on stdout" \
    test $rc = 7 -a "$(field "$logs/request-missing-json.out" status)" = 404 \
    -a "$(field "$logs/request-missing-json.out" body.error)" = not_found
check "request --json with a non-2xx answer: stderr is one JSON line" \
    test "$(wc -l < "$logs/request-missing-json.err")" = 1 -a -n "$(field "$logs/request-missing-json.err" error)"
check "request --json with a non-2xx answer: the error names the command, exit code 7 and the status" \
    test "$(field "$logs/request-missing-json.err" error.command)" = request \
    -a "$(field "$logs/request-missing-json.err" error.exit_code)" = 7 \
    -a "$(field "$logs/request-missing-json.err" error.server.http_status)" = 404 \
    -a "$(field "$logs/request-missing-json.err" error.message)" = "HTTP 404"
# A non-2xx answer whose result cannot reach stdout (a full disk, or stdout closed) fails as any
# result that cannot be written does, exit 1; still one JSON object on stderr, which then carries
# the status: it is written nowhere else.
declare -A unwritable_rc
"$tool" request GET /v1/no_such_endpoint --json > /dev/full 2> "$logs/request-missing-json-full.err" < /dev/null
unwritable_rc[full]=$?
"$tool" request GET /v1/no_such_endpoint --json >&- 2> "$logs/request-missing-json-closed.err" < /dev/null
unwritable_rc[closed]=$?
for unwritable in full closed; do
    err=$logs/request-missing-json-$unwritable.err
    check "request --json with a non-2xx answer, stdout $unwritable: exit 1" \
        test "${unwritable_rc[$unwritable]}" = 1
    check "request --json with a non-2xx answer, stdout $unwritable: stderr is one JSON object on one line" \
        test "$(wc -l < "$err")" = 1 -a -n "$(field "$err" error)"
    check "request --json with a non-2xx answer, stdout $unwritable: the write failure, exit code 1 and the status" \
        test "$(field "$err" error.exit_code)" = 1 -a "$(field "$err" error.server.http_status)" = 404 \
        -a "$(field "$err" error.message)" = "writing the result to standard output failed; the API answered HTTP 404"
done
# In text, each on its own line: the status, then the write failure (exit 1).
"$tool" request GET /v1/no_such_endpoint > /dev/full 2> "$logs/request-missing-full.err" < /dev/null
rc=$?
check "request with a non-2xx answer, stdout full: exit 1, the status and the write failure on stderr" \
    test $rc = 1 -a "$(cat "$logs/request-missing-full.err")" = \
    $'apollo-oauth request: HTTP 404\napollo-oauth request: writing the result to standard output failed'

# ---------------------------------------------------------------- as a new user found it
# --base-url: one origin, Apollo's paths below it; each endpoint option still overrides its own.
base_url=$(field "$logs/emulator.out" base_url)
no_endpoints=(env -u APOLLO_AUTHORIZE_URL -u APOLLO_TOKEN_URL -u APOLLO_PROFILE_URL -u APOLLO_API_BASE)
"${no_endpoints[@]}" "$tool" profile --json --base-url "$base_url" > "$logs/base-url.out" 2> "$logs/base-url.err"
rc=$?
check "--base-url alone reaches the profile endpoint: exit 0" \
    test $rc = 0 -a "$(field "$logs/base-url.out" email)" = ada@example.com
"${no_endpoints[@]}" "$tool" authorize-url --json --account base --base-url "$base_url/" \
    > "$logs/base-url-authorize.out" 2> "$logs/base-url-authorize.err"
check "--base-url: the authorize URL is Apollo's path below it" \
    bash -c "'$helper' json url < '$logs/base-url-authorize.out' | grep -q '^$base_url/oauth/authorize?'"
"${no_endpoints[@]}" "$tool" authorize-url --json --account base --base-url "$base_url" \
    --authorize-url https://auth.example.com/authorize > "$logs/base-url-override.out" 2> "$logs/base-url-override.err"
check "--authorize-url overrides --base-url for that endpoint" \
    bash -c "'$helper' json url < '$logs/base-url-override.out' | grep -q '^https://auth.example.com/authorize?'"
run base-url-env authorize-url --json --account base --base-url https://127.0.0.1:1
check "--base-url wins over the APOLLO_*_URL environment" \
    bash -c "'$helper' json url < '$logs/base-url-env.out' | grep -q '^https://127.0.0.1:1/oauth/authorize?'"
run base-url-path profile --base-url "$base_url/api"
check "--base-url with a path: exit 2, says an origin is wanted" \
    test $rc = 2 -a -n "$(grep 'wants an https origin' "$logs/base-url-path.err")"

# exchange with a code but no state: where the state comes from, and the simpler way.
run exchange-code-only exchange --code some-code
check "exchange --code alone: exit 2" test $rc = 2
check "exchange --code alone: says the state comes from authorize-url" contains "$logs/exchange-code-only.err" "authorize-url"
check "exchange --code alone: points to --redirect-url" contains "$logs/exchange-code-only.err" "--redirect-url URL"

# A path without its leading slash, or a whole URL.
run request-no-slash request GET api/v1/users/api_profile
check "request without a leading slash: exit 2" test $rc = 2
check "request without a leading slash: says what is wrong, and the fix" \
    contains "$logs/request-no-slash.err" "PATH must start with '/'"
check "request without a leading slash: the corrected path" contains "$logs/request-no-slash.err" "write /api/v1/users/api_profile"
run request-url request GET "$base_url/v1/tasks"
check "request with a whole URL: exit 2, says PATH is a path" \
    test $rc = 2 -a -n "$(grep 'not a whole URL' "$logs/request-url.err")"

# insufficient_scope from a resource server that follows RFC 6750 (403 + WWW-Authenticate scope=).
mkfifo "$work/refuse-scope.out"
"$helper" refuse-scope "$work/listener.crt" "$work/listener.key" read_user_profile \
    > "$work/refuse-scope.out" 2> "$logs/refuse-scope.err" &
refuse_pid=$!
exec {refuse_out}< "$work/refuse-scope.out"
read -r -t 30 refuse_port <&"$refuse_out"
cat "$ca_file" "$work/listener.crt" > "$work/both-cas.pem"
run scope-profile profile --ca-file "$work/both-cas.pem" \
    --profile-url "https://127.0.0.1:$refuse_port/api/v1/users/api_profile"
check "insufficient_scope: exit 4" test $rc = 4
check "insufficient_scope: named as RFC 6750's" contains "$logs/scope-profile.err" "RFC 6750 insufficient_scope"
check "insufficient_scope: with the scope the server wants" \
    contains "$logs/scope-profile.err" 'the server wants scope "read_user_profile"'
check "insufficient_scope: not called an error RFC 6749 does not define" lacks "$logs/scope-profile.err" "not defined by RFC 6749"
run scope-profile-json profile --json --ca-file "$work/both-cas.pem" \
    --profile-url "https://127.0.0.1:$refuse_port/api/v1/users/api_profile"
check "insufficient_scope --json: the scope in error.server.scope" \
    test "$(field "$logs/scope-profile-json.err" error.server.scope)" = read_user_profile
kill "$refuse_pid"
wait "$refuse_pid" 2> /dev/null
exec {refuse_out}<&-

# A 401 whose challenge does not blame the token (insufficient_scope, from a server that answers it
# with 401 rather than 403): profile reports it as it is, without a refresh, which would rotate the
# grant for nothing (diagnostics::blames_the_token, api_client's rule).
mkfifo "$work/refuse-scope-401.out"
"$helper" refuse-scope "$work/listener.crt" "$work/listener.key" read_user_profile 401 \
    > "$work/refuse-scope-401.out" 2> "$logs/refuse-scope-401.err" &
refuse_pid=$!
exec {refuse_out}< "$work/refuse-scope-401.out"
read -r -t 30 refuse_port <&"$refuse_out"
grants_before=$(refresh_grants)
run scope-profile-401 profile --ca-file "$work/both-cas.pem" \
    --profile-url "https://127.0.0.1:$refuse_port/api/v1/users/api_profile"
check "401 insufficient_scope on the profile: exit 4, named" \
    test $rc = 4 -a -n "$(grep 'RFC 6750 insufficient_scope' "$logs/scope-profile-401.err")"
check "401 insufficient_scope on the profile: no refresh" test "$(refresh_grants)" = "$grants_before"
# The same 401 to `request` (api_client's rule: no refresh either): the challenge on stderr, and
# with --json its parts in error.server, as other --json failures carry what the server said.
run scope-request-401 request GET /v1/tasks --ca-file "$work/both-cas.pem" --api-base "https://127.0.0.1:$refuse_port"
check "401 insufficient_scope on a request: exit 7, the challenge on stderr" \
    test $rc = 7 -a -n "$(grep -F 'HTTP 401 (WWW-Authenticate: Bearer realm="example", error="insufficient_scope"' \
        "$logs/scope-request-401.err")"
run scope-request-401-json request GET /v1/tasks --json --ca-file "$work/both-cas.pem" \
    --api-base "https://127.0.0.1:$refuse_port"
check "401 insufficient_scope on a request --json: exit 7, status 401 on stdout, one JSON line on stderr" \
    test $rc = 7 -a "$(field "$logs/scope-request-401-json.out" status)" = 401 \
    -a "$(wc -l < "$logs/scope-request-401-json.err")" = 1
check "401 insufficient_scope on a request --json: error.server holds the status, the error and the scope" \
    test "$(field "$logs/scope-request-401-json.err" error.server.http_status)" = 401 \
    -a "$(field "$logs/scope-request-401-json.err" error.server.error)" = insufficient_scope \
    -a "$(field "$logs/scope-request-401-json.err" error.server.scope)" = read_user_profile
check "401 insufficient_scope on a request --json: the challenge in error.message" \
    contains "$logs/scope-request-401-json.err" 'WWW-Authenticate: Bearer realm=\"example\"'
check "401 insufficient_scope on a request: no refresh" test "$(refresh_grants)" = "$grants_before"
kill "$refuse_pid"
wait "$refuse_pid" 2> /dev/null
exec {refuse_out}<&-

# A refused connection and a failed TLS verification: what failed, where, and with which CA file.
closed_port=$("$helper" free-port)
run refresh-refused refresh --token-url "https://127.0.0.1:$closed_port/api/v1/oauth/token"
check "refresh, connection refused: exit 1" test $rc = 1
check "refresh, connection refused: says it could not connect, and where" \
    contains "$logs/refresh-refused.err" "could not connect to the token endpoint at 127.0.0.1:$closed_port"
check "refresh, connection refused: not worded as a refusal of the refresh" lacks "$logs/refresh-refused.err" "refresh was refused"
emulator_port=$(field "$logs/emulator.out" port)
run refresh-untrusted refresh --ca-file "$work/listener.crt"
check "refresh, TLS verification failed: exit 1" test $rc = 1
check "refresh, TLS verification failed: says the TLS handshake failed, and with which host" \
    contains "$logs/refresh-untrusted.err" "the TLS handshake with the token endpoint at 127.0.0.1:$emulator_port failed"
check "refresh, TLS verification failed: names the CA file used" contains "$logs/refresh-untrusted.err" "and the CA file $work/listener.crt"
APOLLO_CA_FILE= run refresh-no-ca refresh
check "refresh, TLS with no CA file: says only the system's store was used" \
    contains "$logs/refresh-no-ca.err" "system's trust store only"
run request-refused request GET /v1/tasks --api-base "https://127.0.0.1:$closed_port"
check "request, connection refused: exit 1, names the API's host" \
    test $rc = 1 -a -n "$(grep -F "could not connect to the API at 127.0.0.1:$closed_port" "$logs/request-refused.err")"

# ---------------------------------------------------------------- two token processes racing
# The account's token is stored already expired (lifetime 0), then the lifetime goes back up,
# so exactly one refresh is needed. The tool has no lock of its own: the file store's lease (an
# flock on <hash>.lease, taken by the cache around re-read -> refresh -> commit) coordinates the
# processes. The test holds that flock while both processes start, waits until each says it is
# waiting for another process's refresh, then lets both go at once.
export APOLLO_ACCOUNT=racer
emulator_command "expires-in 0" > /dev/null
run race-authorize authorize-url
redirect=$("$helper" get --cacert "$ca_file" "$(cat "$logs/race-authorize.out")" | sed -n 2p)
run race-exchange exchange --redirect-url "$redirect"
emulator_command "expires-in 3600" > /dev/null
check "race: set-up exchange ok" test $rc = 0
grants_before=$(refresh_grants)
racer_lock=$tokens/$(printf %s racer | sha256sum | cut -d' ' -f1).lease
exec {held}> "$racer_lock"
flock "$held"
race_pids=()
race_cats=()
for i in 1 2; do
    mkfifo "$work/race$i.err"
    # {held}>&-: the lock's descriptor must not be inherited, or the child would hold the lock.
    "$tool" token > "$work/race$i.secret-out" 2> "$work/race$i.err" < /dev/null {held}>&- &
    race_pids+=($!)
    exec {race_err}< "$work/race$i.err"
    read -r -t 60 waiting <&"$race_err"
    echo "$waiting" > "$logs/race$i.err"
    check "race: process $i waits for the store's lease" test -n "$(echo "$waiting" | grep "Waiting for another apollo-oauth process refreshing account 'racer'")"
    cat <&"$race_err" >> "$logs/race$i.err" {held}>&- &
    race_cats+=($!)
    exec {race_err}<&-
done
exec {held}>&-  # both go
wait "${race_pids[0]}"
rc1=$?
wait "${race_pids[1]}"
rc2=$?
wait "${race_cats[@]}"
check "race: both processes succeed" test $rc1 = 0 -a $rc2 = 0
check "race: both print the same (rotated) token" test "$(cat "$work/race1.secret-out")" = "$(cat "$work/race2.secret-out")"
check "race: exactly one refresh reached the server" test "$(refresh_grants)" = $((grants_before + 1))
check "race: no .cli-lock file any more" test -z "$(ls "$tokens" | grep -F .cli-lock)"

# ---------------------------------------------------------------- a signal during a refresh
# The token endpoint is cli_test_helper hold-proxy: it forwards a refresh to the emulator at once
# (which rotates, revoking the old pair), says "held", and passes the answer on only when the test
# writes a line to it. A signal reaching `refresh` meanwhile must not lose the new pair: the first
# one makes it wait for the answer and store it (exit 6), the second one exits at once (exit 1).
mkfifo "$work/hold.in" "$work/hold.out"
"$helper" hold-proxy "$work/listener.crt" "$work/listener.key" "$ca_file" "$base_url" \
    < "$work/hold.in" > "$work/hold.out" 2> "$logs/hold-proxy.err" &
hold_pid=$!
exec {hold_in}> "$work/hold.in"
exec {hold_out}< "$work/hold.out"
read -r -t 30 hold_port <&"$hold_out"
held_token_url="https://127.0.0.1:$hold_port/api/v1/oauth/token"

# authorize_account ACCOUNT: an account with a stored pair (authorize-url, the browser, exchange).
authorize_account() {
    APOLLO_ACCOUNT=$1 run "authorize-$1" authorize-url
    redirect=$("$helper" get --cacert "$ca_file" "$(cat "$logs/authorize-$1.out")" | sed -n 2p)
    APOLLO_ACCOUNT=$1 run "exchange-$1" exchange --redirect-url "$redirect"
}
# start_held NAME COMMAND...: runs the tool with the token endpoint behind the proxy, stdout in
# logs/NAME.out (or $held_stdout when set), stderr in a FIFO read by $held_err, and waits until the
# proxy holds an answer; sets $held_pid.
start_held() {
    local name=$1
    shift
    mkfifo "$work/$name.err"
    "$tool" "$@" --token-url "$held_token_url" --ca-file "$work/both-cas.pem" \
        > "${held_stdout:-$logs/$name.out}" 2> "$work/$name.err" < /dev/null &
    held_pid=$!
    exec {held_err}< "$work/$name.err"
    read -r -t 60 held <&"$hold_out"
    echo "$held" > "$logs/$name.held"
}
# read_until NAME TEXT: reads the held command's stderr into logs/NAME.err until a line holds
# TEXT (or it ends); true when one did.
read_until() {
    local line
    while read -r -t 60 line <&"$held_err"; do
        echo "$line" >> "$logs/$1.err"
        case $line in *"$2"*) return 0 ;; esac
    done
    return 1
}
# end_held NAME: the rest of its stderr, and its exit code in $rc.
end_held() {
    cat <&"$held_err" >> "$logs/$1.err"
    exec {held_err}<&-
    wait "$held_pid"
    rc=$?
}

authorize_account signal-once
check "signal: set-up exchange ok" test $rc = 0
export APOLLO_ACCOUNT=signal-once
grants_before=$(refresh_grants)
start_held refresh-signal refresh
check "signal: the refresh reached the server, which rotated (the proxy holds its answer)" \
    test "$(cut -d' ' -f1 "$logs/refresh-signal.held")" = held -a "$(refresh_grants)" = $((grants_before + 1))
kill -TERM "$held_pid"
read_until refresh-signal "signal again to abandon them"
check "signal: the first SIGTERM says the rotated tokens are being stored" test $? = 0
echo release >&"$hold_in"
end_held refresh-signal
check "signal: refresh interrupted by SIGTERM exits 6 once the pair is stored" test $rc = 6
check "signal: ... and says so" contains "$logs/refresh-signal.err" "interrupted (SIGTERM) before it finished"
run refresh-after-signal refresh
check "signal: the next refresh succeeds (the rotated pair was stored)" test $rc = 0
check "signal: one refresh at the server per rotation" test "$(refresh_grants)" = $((grants_before + 2))
"$tool" token > "$work/token-after-signal.secret-out" 2> "$logs/token-after-signal.err"
rc=$?
check "signal: token then succeeds without a refresh" test $rc = 0 -a "$(refresh_grants)" = $((grants_before + 2))

# Twice: the second signal exits at once, without the answer (the pair it held is lost; the test
# releases it only after the process is gone). SIGHUP, then SIGTERM; not SIGINT, which a background
# job of a script ignores, as the tool then does too.
authorize_account signal-twice
export APOLLO_ACCOUNT=signal-twice
start_held refresh-signal-twice refresh
kill -HUP "$held_pid"
read_until refresh-signal-twice "signal again to abandon them"
kill -TERM "$held_pid"
end_held refresh-signal-twice
echo release >&"$hold_in"
check "signal: a second signal exits at once with exit 1, saying what may be lost" \
    test $rc = 1 -a -n "$(grep 'interrupted again (SIGTERM): exiting at once' "$logs/refresh-signal-twice.err")"

# A code exchange is not cancelled by the first signal: its answer is a new grant, awaited and stored.
export APOLLO_ACCOUNT=signal-exchange
run signal-exchange-authorize authorize-url
redirect=$("$helper" get --cacert "$ca_file" "$(cat "$logs/signal-exchange-authorize.out")" | sed -n 2p)
start_held exchange-signal exchange --redirect-url "$redirect"
kill -TERM "$held_pid"
read_until exchange-signal "signal again to abandon them"
echo release >&"$hold_in"
end_held exchange-signal
check "signal: an exchange held at the server is seen through: exit 0, tokens stored" \
    test $rc = 0 -a -n "$(grep "Authorized account 'signal-exchange'" "$logs/exchange-signal.out")"
"$tool" token > "$work/token-signal-exchange.secret-out" 2> "$logs/token-signal-exchange.err"
check "signal: ... and token then uses them" test $? = 0

# An ignored signal stays ignored (nohup): SIGHUP then does nothing, and SIGTERM still works.
authorize_account signal-nohup
export APOLLO_ACCOUNT=signal-nohup
mkfifo "$work/refresh-nohup.err"
nohup "$tool" refresh --token-url "$held_token_url" --ca-file "$work/both-cas.pem" \
    > "$logs/refresh-nohup.out" 2> "$work/refresh-nohup.err" < /dev/null &
held_pid=$!
exec {held_err}< "$work/refresh-nohup.err"
read -r -t 60 held <&"$hold_out"
kill -HUP "$held_pid"
kill -TERM "$held_pid"
read_until refresh-nohup "signal again to abandon them"
echo release >&"$hold_in"
end_held refresh-nohup
check "signal: under nohup, SIGHUP is ignored and SIGTERM is the first signal (exit 6)" \
    test $rc = 6 -a -z "$(grep SIGHUP "$logs/refresh-nohup.err")"

# ---------------------------------------------------------------- a rotated pair that cannot be stored
# request with an expired token: the refresh goes through the proxy, and while its answer is held
# the account's record file becomes a directory, so the rotated pair cannot be stored. The API call
# itself succeeds with the new token: its response must be printed (a script that retries on a
# non-zero exit would otherwise create the tasks twice), then the unstored pair reported, exit 8.
# The same with --json, and both again with stdout /dev/full: still exit 8, and the message must
# not say the response is on stdout. All four run alongside (each waits out the 15 s the cache
# gives the store).
emulator_command "expires-in 0" > /dev/null
unstored_ok=true
for account in unstored unstored-json unstored-full unstored-full-json; do
    authorize_account $account
    [ $rc = 0 ] || unstored_ok=false
done
emulator_command "expires-in 3600" > /dev/null
check "unstored: set-up exchanges ok" $unstored_ok
declare -A unstored_pid unstored_err unstored_rc
# unstored_request NAME ACCOUNT ARGS...: the request, its record made a directory while held.
unstored_request() {
    local name=$1 account=$2
    shift 2
    local record
    record=$tokens/$(printf %s "$account" | sha256sum | cut -d' ' -f1).json
    APOLLO_ACCOUNT=$account start_held "$name" request POST /v1/tasks/bulk_create "$@"
    mv "$record" "$work/$name-record.json"
    mkdir "$record"
    echo release >&"$hold_in"
    unstored_pid[$name]=$held_pid
    unstored_err[$name]=$held_err
}
# end_unstored NAME: waits for it; its exit code in ${unstored_rc[NAME]}.
end_unstored() {
    held_pid=${unstored_pid[$1]}
    held_err=${unstored_err[$1]}
    end_held "$1"
    unstored_rc[$1]=$rc
}
unstored_request request-unstored unstored --data '{"tasks":[{"type":"call"}]}'
unstored_request request-unstored-json unstored-json --json --data '{"tasks":[{"type":"call"}]}'
held_stdout=/dev/full unstored_request request-unstored-full unstored-full --data '{"tasks":[{"type":"call"}]}'
held_stdout=/dev/full unstored_request request-unstored-full-json unstored-full-json --json \
    --data '{"tasks":[{"type":"call"}]}'
for name in request-unstored-full-json request-unstored-full request-unstored-json request-unstored; do
    end_unstored $name
done
check "unstored: request exits 8 (done, but the rotated pair is not stored)" \
    test "${unstored_rc[request-unstored]}" = 8
check "unstored: the API's answer is on stdout" json_ok "$logs/request-unstored.out"
check "unstored: stderr says the request itself completed, with its status" \
    contains "$logs/request-unstored.err" "the request itself completed with status 200"
check "unstored: ... and that the new tokens could not be stored" \
    contains "$logs/request-unstored.err" "could not be stored"
check "unstored --json: exit 8, the status and body on stdout" \
    test "${unstored_rc[request-unstored-json]}" = 8 -a "$(field "$logs/request-unstored-json.out" status)" = 200 \
    -a -n "$(field "$logs/request-unstored-json.out" body)"
check "unstored --json: stderr is one JSON object with exit code 8" \
    test "$(field "$logs/request-unstored-json.err" error.exit_code)" = 8
check "unstored --json: ... saying the response is on stdout" \
    contains "$logs/request-unstored-json.err" "(its response is on stdout: do not send it again); however, "
# Stdout /dev/full: the response never got there, and the one failure says so (it said "its
# response is on stdout"), with the same exit 8: the request has had its effect all the same.
unwritten="(its response could not be written to standard output: do not send it again); however, "
check "unstored, stdout full: still exit 8" test "${unstored_rc[request-unstored-full]}" = 8
check "unstored, stdout full: stderr says the response could not be written" \
    contains "$logs/request-unstored-full.err" "the request itself completed with status 200 $unwritten"
check "unstored, stdout full: ... not that it is on stdout" lacks "$logs/request-unstored-full.err" "is on stdout"
check "unstored, stdout full: ... once (no second line that writing failed as well)" \
    lacks "$logs/request-unstored-full.err" "failed as well"
check "unstored --json, stdout full: still exit 8, one JSON object on one line" \
    test "${unstored_rc[request-unstored-full-json]}" = 8 \
    -a "$(wc -l < "$logs/request-unstored-full-json.err")" = 1 \
    -a "$(field "$logs/request-unstored-full-json.err" error.exit_code)" = 8
check "unstored --json, stdout full: its message says the response could not be written" \
    contains "$logs/request-unstored-full-json.err" "the request itself completed with status 200 $unwritten"
check "unstored --json, stdout full: ... not that it is on stdout" \
    lacks "$logs/request-unstored-full-json.err" "is on stdout"

kill "$hold_pid"
wait "$hold_pid" 2> /dev/null
exec {hold_in}>&- {hold_out}<&-

# ---------------------------------------------------------------- a record the store cannot read
# The file store refuses to replace a record it cannot read (its generation is unknown): exchange
# and login must find that out before the code is sent, or the new grant's pair is lost with it.
# The message names the file and says to move it aside; the pending state is kept, so the same
# redirect is exchanged once it is.
code_grants() { emulator_command stats | "$helper" json stats.authorization_code_grants; }
authorize_account corrupt
check "corrupt record: set-up exchange ok" test $rc = 0
corrupt_record=$tokens/$(printf %s corrupt | sha256sum | cut -d' ' -f1).json
printf x >> "$corrupt_record"
APOLLO_ACCOUNT=corrupt run corrupt-authorize authorize-url
redirect=$("$helper" get --cacert "$ca_file" "$(cat "$logs/corrupt-authorize.out")" | sed -n 2p)
grants_before=$(code_grants)
APOLLO_ACCOUNT=corrupt run corrupt-exchange exchange --redirect-url "$redirect"
check "exchange over a corrupt record: exit 1 before the code is sent (code grants $grants_before -> $(code_grants))" \
    test $rc = 1 -a "$(code_grants)" = "$grants_before"
check "exchange over a corrupt record: names the file and says to move it aside" \
    test -n "$(grep -F "record of account 'corrupt', $corrupt_record (nothing was sent" "$logs/corrupt-exchange.err")" \
    -a -n "$(grep -F "move it aside (mv $corrupt_record " "$logs/corrupt-exchange.err")"
check "exchange over a corrupt record: nothing said of a server" lacks "$logs/corrupt-exchange.err" "server said"
APOLLO_ACCOUNT=corrupt run corrupt-login login --timeout 1
check "login over a corrupt record: exit 1 before it listens, naming the file" \
    test $rc = 1 -a -n "$(grep -F "record of account 'corrupt', $corrupt_record (nothing was sent" "$logs/corrupt-login.err")" \
    -a -z "$(grep 'Waiting for the browser' "$logs/corrupt-login.err")"
mv "$corrupt_record" "$corrupt_record.corrupt"
APOLLO_ACCOUNT=corrupt run corrupt-exchange-after exchange --redirect-url "$redirect"
check "exchange once the corrupt record is moved aside: the same redirect's code is exchanged" \
    test $rc = 0 -a "$(code_grants)" = $((grants_before + 1))

# ---------------------------------------------------------------- --store redis://
# A real redis-server on an ephemeral port, with a password (in its config file, not its argv),
# started here and stopped on exit. The tool gets the password from APOLLO_REDIS_PASSWORD only.
redis_pid=
stop_redis() {
    if [ -n "$redis_pid" ]; then
        kill -TERM "$redis_pid" 2> /dev/null
        wait "$redis_pid" 2> /dev/null
        redis_pid=
    fi
}
trap 'stop_redis; stop_emulator' EXIT
if ! command -v redis-server > /dev/null; then
    echo "SKIP --store redis:// tests: redis-server is not installed (Debian package redis-server;" \
        "scripts/run.sh installs it)"
elif [ "$("$tool" token --help | grep -c 'NOT IN THIS BUILD')" != 0 ]; then
    echo "SKIP --store redis:// tests: this apollo-oauth was built without the Redis store (no hiredis)"
else
    redis_port=$("$helper" free-port)
    redis_password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    mkdir -p "$work/redis"
    (umask 077 && printf 'port %s\nbind 127.0.0.1\nrequirepass %s\nsave ""\nappendonly no\ndir %s\nlogfile ""\n' \
        "$redis_port" "$redis_password" "$work/redis" > "$work/redis/redis.conf")
    mkfifo "$work/redis/log"
    redis-server "$work/redis/redis.conf" > "$work/redis/log" 2>&1 < /dev/null &
    redis_pid=$!
    exec {redis_log}< "$work/redis/log"
    redis_ready=
    while read -r -t 30 line <&"$redis_log"; do
        case $line in *"Ready to accept connections"*) redis_ready=1; break ;; esac
    done
    cat <&"$redis_log" > "$work/redis/rest.log" &  # keeps the server's stdout drained
    exec {redis_log}<&-
    check "redis: redis-server started on port $redis_port" test -n "$redis_ready"
    redis_keys() { REDISCLI_AUTH=$redis_password redis-cli -p "$redis_port" --scan --pattern "$1" 2> /dev/null; }
    store_url="redis://127.0.0.1:$redis_port/0?key_prefix=cli-test:"
    redis_hash=$(printf %s redis-user | sha256sum | cut -d' ' -f1)

    run redis-password-argv token --store "redis://:$redis_password@127.0.0.1:$redis_port"
    check "redis: a password in --store on argv is refused with exit 2" test $rc = 2
    check "redis: the refusal says where the password goes" contains "$logs/redis-password-argv.err" "APOLLO_REDIS_PASSWORD"
    check "redis: the refusal does not quote the password" lacks "$logs/redis-password-argv.err" "$redis_password"

    # Expired at once, so the request below must refresh, and store the rotated pair in Redis.
    emulator_command "expires-in 0" > /dev/null
    APOLLO_ACCOUNT=redis-user run redis-authorize authorize-url --store "$store_url"
    redirect=$("$helper" get --cacert "$ca_file" "$(cat "$logs/redis-authorize.out")" | sed -n 2p)
    APOLLO_ACCOUNT=redis-user APOLLO_REDIS_PASSWORD=$redis_password \
        run redis-exchange exchange --json --redirect-url "$redirect" --store "$store_url"
    emulator_command "expires-in 3600" > /dev/null
    check "redis: exchange with --store redis:// exits 0" test $rc = 0
    check "redis: exchange --json names the Redis store" \
        test "$(field "$logs/redis-exchange.out" store)" = "redis://127.0.0.1:$redis_port/0"
    check "redis: the pair is a key in Redis, under the prefix" test -n "$(redis_keys 'cli-test:*')"
    check "redis: no token file was written for the account" test ! -e "$tokens/$redis_hash.json"

    grants_before=$(refresh_grants)
    APOLLO_ACCOUNT=redis-user APOLLO_REDIS_PASSWORD=$redis_password \
        run redis-request request POST /v1/tasks/bulk_create --store "$store_url" --data '{"tasks":[]}'
    check "redis: request through the Redis store exits 0" test $rc = 0
    check "redis: the expired token was refreshed once" test "$(refresh_grants)" = $((grants_before + 1))
    # stdout holds the token: kept out of logs/, which the secret scan below reads.
    APOLLO_ACCOUNT=redis-user APOLLO_REDIS_PASSWORD=$redis_password \
        "$tool" token --store "$store_url" > "$work/redis-token.secret-out" 2> "$logs/redis-token.err" < /dev/null
    rc=$?
    check "redis: token then uses the rotated pair stored in Redis (no further refresh)" \
        test $rc = 0 -a "$(refresh_grants)" = $((grants_before + 1))
    redis_record="cli-test:{redis-user}"
    check "redis: the record in Redis is at generation 2 (exchange, then one refresh)" \
        test "$(REDISCLI_AUTH=$redis_password redis-cli -p "$redis_port" HGET "$redis_record" gen 2> /dev/null)" = 2
    check "redis: the token printed is the access token stored in Redis" \
        test "$(REDISCLI_AUTH=$redis_password redis-cli -p "$redis_port" HGET "$redis_record" access 2> /dev/null)" \
        = "$(cat "$work/redis-token.secret-out")"
    APOLLO_ACCOUNT=redis-user run redis-file-store token
    check "redis: the file store knows nothing of the account (exit 5)" test $rc = 5
    APOLLO_ACCOUNT=redis-user APOLLO_REDIS_PASSWORD=wrong-password \
        run redis-wrong-password token --store "$store_url"
    check "redis: a wrong password fails (exit 1)" test $rc = 1
    APOLLO_ACCOUNT=redis-user run redis-user-without-password token \
        --store "redis://svc@127.0.0.1:$redis_port/0?key_prefix=cli-test:"
    check "redis: a URL user without a password is refused with exit 2" test $rc = 2
    check "redis: the refusal says where the password goes" \
        contains "$logs/redis-user-without-password.err" "APOLLO_REDIS_PASSWORD"
    stop_redis
fi

# ---------------------------------------------------------------- an emulator out of descriptors
# An accept that fails for want of descriptors is tried again after a pause: the connection stays
# in the backlog, and a loop without one burns a core until descriptors come back. An emulator
# limited to 48 descriptors is sent 96 connections; its CPU time over one second (a measurement
# window, not a wait for an event) stays far below the second that spinning burns, and once the
# connections close it serves again.
if [ -n "${APOLLO_OAUTH_SANITIZE:-}" ]; then
    # A sanitizer's runtime needs descriptors of its own: UBSan's vptr check probes memory
    # through a pipe (sanitizer_common's IsAccessibleMemoryRange), which a process out of
    # descriptors cannot open, and it then reports a valid object as one with an invalid vptr and
    # aborts. The plain build runs this part; the sanitizer builds check the rest.
    echo "skip emulator out of descriptors: not under a sanitizer ($APOLLO_OAUTH_SANITIZE)"
else
    mkfifo "$work/emu-fds.in" "$work/emu-fds.out"
    prlimit --nofile=48 "$tool" emulator --json < "$work/emu-fds.in" > "$work/emu-fds.out" \
        2> "$logs/emulator-fds.err" &
    emu_fds_pid=$!
    exec {emu_fds_in}> "$work/emu-fds.in"
    exec {emu_fds_out}< "$work/emu-fds.out"
    if read -r -t 60 emu_fds_line <&"$emu_fds_out"; then
        echo "$emu_fds_line" > "$logs/emulator-fds.out"
        emu_fds_url=$(field "$logs/emulator-fds.out" token_url)
        open_flood "$(port_of "$emu_fds_url")"
        cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$emu_fds_pid/stat"; }
        before=$(cpu_ticks)
        sleep 1
        spent=$(($(cpu_ticks) - before))
        check "emulator out of descriptors: it pauses instead of spinning ($spent ticks in 1 s, ${#flood_fds[@]} connections)" \
            test "$spent" -lt 30 -a "${#flood_fds[@]}" -gt 48
        close_flood
        served=$("$helper" get --cacert "$(field "$logs/emulator-fds.out" ca_file)" "$emu_fds_url" | head -1)
        check "emulator out of descriptors: it serves again once they are back (status $served)" test -n "$served"
    else
        check "emulator under a descriptor limit: it starts" false
    fi
    kill -TERM "$emu_fds_pid" 2> /dev/null
    wait "$emu_fds_pid"
    exec {emu_fds_in}>&- {emu_fds_out}<&-
fi

# ---------------------------------------------------------------- the README's two lines
# The emulator in text mode prints an export line, and the README says to export it and log in:
# with only what that line sets (not this script's APOLLO_* variables), login must get as far as
# waiting for the browser (exit 6 at its timeout), not stop at a missing setting (exit 2).
mkfifo "$work/emu-text.out"
"$tool" emulator --redirect-uri "https://127.0.0.1:$("$helper" free-port)/callback" \
    < /dev/null > "$work/emu-text.out" 2> "$logs/emulator-text.err" &
emu_text_pid=$!
exec {emu_text_out}< "$work/emu-text.out"
export_line=
while read -r -t 60 line <&"$emu_text_out"; do
    echo "$line" >> "$logs/emulator-text.out"
    if [[ $line == export\ * ]]; then
        export_line=$line
        break
    fi
done
check "emulator (text): prints an export line with the redirect URI" contains "$logs/emulator-text.out" "APOLLO_REDIRECT_URI="
env -u APOLLO_CLIENT_ID -u APOLLO_CLIENT_SECRET_FILE -u APOLLO_CA_FILE -u APOLLO_AUTHORIZE_URL \
    -u APOLLO_TOKEN_URL -u APOLLO_PROFILE_URL -u APOLLO_API_BASE -u APOLLO_REDIRECT_URI \
    APOLLO_TOKEN_DIR="$work/readme-tokens" bash -c "$export_line && exec \"\$0\" login --timeout 1" "$tool" \
    > "$logs/readme-login.out" 2> "$logs/readme-login.err" < /dev/null
rc=$?
check "the README's lines: login with only the exported settings waits for the browser (exit $rc, 6 at its timeout)" test $rc = 6
kill -TERM "$emu_text_pid" 2> /dev/null
wait "$emu_text_pid"
exec {emu_text_out}<&-

# ---------------------------------------------------------------- no secret in any output
emulator_command "dump-secrets $work/emulator.secrets" > /dev/null
check "emulator dump-secrets: file written, 0600" test "$(mode_of "$work/emulator.secrets")" = 600
leaks=$(grep -lF -f "$work/emulator.secrets" "$logs"/* 2> /dev/null)
check "no secret in any captured stdout/stderr${leaks:+ (leaked in: $leaks)}" test -z "$leaks"
check "the scan finds a secret where one is expected (token's stdout)" grep -qF -f "$work/emulator.secrets" "$work/token.secret-out"

# The emulator ignores SIGINT (see its start): it goes on answering.
kill -INT "$emulator_pid"
check "emulator started with SIGINT ignored: SIGINT leaves it running" test -n "$(refresh_grants)"

stop_emulator
check "emulator: SIGTERM stops it with exit 0" test "$emulator_rc" = 0
check "emulator: the client secret file is removed on exit" test ! -e "$secret_file"

echo "$checks checks, $failures failed"
[ $failures = 0 ]
