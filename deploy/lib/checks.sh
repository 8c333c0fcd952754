# shellcheck shell=bash
# Shared by the lab tests: check lines, traffic helpers and one way in and
# out. Source it after deploy/lib/gateways.sh (for in_ns, stop_gateways)
# with $prefix and $work set, then:
#
#   lab_begin NAME [LOGS]
#                    on any exit (the end, an error, a signal) run the
#                    test's lab_cleanup, stop the gateways, delete the lab
#                    and remove $work, which is kept when a check failed,
#                    the test stopped early or KEEP_LOGS=1 is set (LOGS
#                    says what is in it). A test
#                    that stops before lab_end prints a failing summary
#                    line, so deploy/test.sh counts it.
#   lab_cleanup()    defined by a test (after sourcing this) for what it
#                    started itself: captures, strongSwan, extra namespaces.
#   lab_end          the summary deploy/test.sh adds up, "lab NAME (N s):
#                    P passed, F failed"; non-zero when a check failed.

: "${work:?set work before sourcing checks.sh}"
: "${prefix:?set prefix before sourcing checks.sh}"
passed=0
failed=0

lab_cleanup() { :; }

lab_begin() { # name [what the logs in $work are]
    lab_name=$1
    lab_logs=${2:-}
    lab_started=$SECONDS
    lab_ended=0
    # A signal may arrive while check() has stdout and stderr in check.out.
    exec 3>&1 4>&2
    trap lab_exit EXIT
    trap 'exit 130' INT TERM
}

lab_exit() {
    local rc=$?
    exec 1>&3 2>&4
    # A second signal (timeout(1) signals its whole process group) must not
    # cut the cleanup short; every step below is bounded.
    trap '' INT TERM
    lab_cleanup || true
    stop_gateways || true
    deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1 || true
    if [ "$lab_ended" = 0 ]; then
        echo "FAIL: the test stopped early (exit status $rc)" >&2
        echo "lab $lab_name: $passed passed, $((failed + 1)) failed"
    fi
    if [ "$failed" -gt 0 ] || [ "$lab_ended" = 0 ] || [ -n "${KEEP_LOGS:-}" ]; then
        echo "logs kept in $work${lab_logs:+ ($lab_logs)}" >&2
    else
        rm -rf "$work"
    fi
}

lab_end() {
    lab_ended=1
    echo "lab $lab_name ($((SECONDS - lab_started)) s): $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
check() { # description, command...
    local what=$1
    shift
    if "$@" >"$work/check.out" 2>&1; then
        passed=$((passed + 1))
        echo "ok: $what ($(tail -1 "$work/check.out" | tr -d '\0'))"
    else
        failed=$((failed + 1))
        echo "FAIL: $what" >&2
        sed 's/^/    /' "$work/check.out" | tail -20 >&2
    fi
}

# Pings until `want` replies come back (the first packets may be spent on
# neighbour resolution), at most 20 tries.
pings() { # ns, want, ping args...
    local ns=$1 want=$2
    shift 2
    in_ns "$ns" ping -c 20 -i 0.1 -W 1 "$@" | tee /dev/stderr |
        awk -v w="$want" '/received/ {split($0, a, ","); split(a[2], b, " "); exit !(b[1] >= w)}'
}
iperf_from() { # server namespace, server address, client args...
    iperf_from_ns lan_a "$@"
}
iperf_from_ns() { # client namespace, server namespace, server address, client args...
    local client_ns=$1 server_ns=$2 addr=$3
    shift 3
    # bg_in_ns: $! is iperf3 itself, so the kill below stops it.
    bg_in_ns "$server_ns" iperf3 -s -1 -B "$addr" >/dev/null 2>&1
    local s=$!
    sleep 0.5
    in_ns "$client_ns" timeout 20 iperf3 -c "$addr" -t 3 "$@" -J >"$work/iperf.json"
    local rc=$?
    # A client that never connected leaves the server waiting.
    [ $rc -eq 0 ] || kill "$s" 2>/dev/null
    wait "$s" 2>/dev/null
    [ $rc -eq 0 ] || return 1
    /usr/bin/python3 - "$work/iperf.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["end"]
s = r.get("sum_received") or r.get("sum")
print(f"{s['bits_per_second']/1e6:.1f} Mbit/s, lost {s.get('lost_percent', 0)}%")
sys.exit(0 if s["bits_per_second"] > 1e6 else 1)
PY
}

