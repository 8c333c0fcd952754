# shellcheck shell=bash
# Shared by the lab tests: check lines and traffic helpers. Source it
# after deploy/lib/gateways.sh (for in_ns) with $work set; the caller
# prints "$passed passed, $failed failed" at the end for deploy/test.sh's
# summary.

: "${work:?set work before sourcing checks.sh}"
passed=0
failed=0
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
    local server_ns=$1 addr=$2
    shift 2
    # bg_in_ns: $! is iperf3 itself, so the kill below stops it.
    bg_in_ns "$server_ns" iperf3 -s -1 -B "$addr" >/dev/null 2>&1
    local s=$!
    sleep 0.5
    in_ns lan_a timeout 20 iperf3 -c "$addr" -t 3 "$@" -J >"$work/iperf.json"
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

