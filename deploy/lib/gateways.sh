# Shared by deploy/demo.sh and the lab tests: start and stop the Espada
# gateways of deploy/lab.sh's topology (a and b; c with `lab.sh --three`). Source it after setting $prefix
# (the lab's namespace prefix) and $work (a private scratch directory).
#
# Every process started here is recorded by PID and stopped by that PID.

ESPADA=${ESPADA:-target/release/espada}

gw_ns() { echo "$prefix-gw_$1"; }          # a | b | c
gw_run_dir() { echo "/run/espada-$prefix/gw_$1"; }
in_ns() { local n=$1; shift; ip netns exec "$prefix-$n" "$@"; }
# bg_in_ns NS CMD...: CMD in the background, with $! its own PID (ip netns
# exec execs it), so `kill $!` stops it. `in_ns NS CMD &` would make $! a
# subshell, and killing that leaves CMD running.
bg_in_ns() { local n=$1; shift; ip netns exec "$prefix-$n" "$@" & }

# start_gateway a|b|c CONFIG [espada run flags...]: copies the config to a
# 0600 file (git checkouts are 0644, and espada refuses world-readable key
# files), starts espada in the gateway's namespace and waits for its CLI.
start_gateway() {
    local side=$1 conf=$2
    shift 2
    local dir; dir=$(gw_run_dir "$side")
    mkdir -p "$dir" "$work"
    install -m 600 "$conf" "$work/gw_$side.conf"
    ip netns exec "$(gw_ns "$side")" "$ESPADA" run -c "$work/gw_$side.conf" \
        --run-dir "$dir" "$@" >"$work/espada-$side.log" 2>&1 &
    echo $! >"$work/espada-$side.pid"
    local i
    for i in $(seq 1 100); do
        [ -S "$dir/espada.sock" ] && return 0
        if ! kill -0 "$(cat "$work/espada-$side.pid")" 2>/dev/null; then
            echo "espada on gw_$side exited:" >&2
            cat "$work/espada-$side.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "espada on gw_$side did not open its CLI socket in 10 s:" >&2
    cat "$work/espada-$side.log" >&2
    return 1
}

# show a|b|c COMMAND...: an espada CLI command against that gateway.
show() {
    local side=$1
    shift
    ip netns exec "$(gw_ns "$side")" "$ESPADA" "$@" --run-dir "$(gw_run_dir "$side")"
}

# stop_control a|b|c: stops the control process only (the dataplane stays).
stop_control() {
    local f="$work/espada-$1.pid" pid i
    if [ -f "$f" ]; then
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        wait "$pid" 2>/dev/null || true
        rm -f "$f"
    fi
}

# stop_gateway a|b|c: control process, then the dataplane it started (its PID
# is in the run directory), then the run directory.
stop_gateway() {
    local side=$1 dir pid i
    dir=$(gw_run_dir "$side")
    stop_control "$side"
    if [ -f "$dir/dataplane.pid" ]; then
        pid=$(cat "$dir/dataplane.pid")
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

stop_gateways() {
    stop_gateway a
    stop_gateway b
    stop_gateway c
    rmdir "/run/espada-$prefix" 2>/dev/null || true
}
