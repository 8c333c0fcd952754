#!/usr/bin/env bash
# Runs every Espada test: formatting and lints, unit and property tests, the
# known-answer vectors, the scapy cross-checks (dataplane/tests/,
# control/tests/), the fuzz targets (dataplane/fuzz, control/fuzz) for a
# short time each, the namespace lab topology check, traffic
# through two Espada gateways in the lab (deploy/tests/lab_tunnel.sh) and a
# IKEv1 between two Espada gateways (deploy/tests/lab_ike.sh) and against
# strongSwan (deploy/tests/lab_swan_ikev1.sh), IKEv2 against strongSwan
# (lab_swan_ikev2.sh) and between two Espada gateways with seed 002's
# configuration (lab_seed002.sh), the AF_XDP packet generator and receiver
# (lab_gen.sh), and a smoke run of the benchmark tool.
#
#   deploy/test.sh                    everything
#   ESPADA_FUZZ_SECONDS=60 deploy/test.sh   longer fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it started (seconds since the start): CI's budget
# for this script is 30 minutes.
step() { printf '\n=== %s [%d:%02d]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

step "setup"
deploy/setup.sh
if ! command -v cargo >/dev/null 2>&1; then . "$HOME/.cargo/env"; fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "unit, property, known-answer and scapy cross-check tests"
# scapy is the independent ESP and IKE implementation; the tests refuse to
# pass without it rather than skipping.
export ESPADA_PYTHON=/usr/bin/python3
cargo test --workspace --quiet 2>&1 | tee target/test-output.txt

step "fuzz targets (${ESPADA_FUZZ_SECONDS:-5}s each)"
if cargo fuzz --version >/dev/null 2>&1; then
    # dataplane: packet parsers and ESP; control: IKE messages. One target
    # directory for both (control's targets build dataplane too), every
    # target of a crate built in one cargo run (linked side by side): a
    # minute less than building each on its own. A target that does not
    # build fails the step.
    fuzz_target="$PWD/target/fuzz"
    for dir in dataplane/fuzz control/fuzz; do
        (
            cd "$dir"
            export CARGO_TARGET_DIR="$fuzz_target"
            if ! cargo +nightly fuzz build >"$fuzz_target.build.log" 2>&1; then
                tail -40 "$fuzz_target.build.log" >&2
                echo "the fuzz targets of $dir do not build" >&2
                exit 1
            fi
            for t in $(cargo +nightly fuzz list); do
                printf -- '--- %s/%s\n' "$dir" "$t"
                cargo +nightly fuzz run "$t" -- -max_total_time="${ESPADA_FUZZ_SECONDS:-5}" -print_final_stats=0 2>&1 |
                    grep -E '^(Done|INFO: Done|==.*ERROR|SUMMARY)' || true
                # libFuzzer exits non-zero and leaves an artifact on a crash.
                if ls artifacts/"$t"/crash-* >/dev/null 2>&1; then
                    echo "fuzz target $t crashed: see $dir/artifacts/$t" >&2
                    exit 1
                fi
            done
        )
    done
else
    echo "cargo-fuzz is not installed: deploy/setup.sh installs it" >&2
    exit 1
fi

step "lab topology (network namespaces)"
deploy/tests/lab_topology.sh | tee target/lab-output.txt

step "two Espada gateways in the lab: traffic, tshark decryption, restart, wrong keys"
deploy/tests/lab_tunnel.sh | tee -a target/lab-output.txt

step "IKEv1 between two Espada gateways: negotiation, tshark, clear, restart, flood, rekey, wrong key"
deploy/tests/lab_ike.sh | tee -a target/lab-output.txt

step "IKEv1 interop with strongSwan (kernel-libipsec): both roles, three proposals, NAT-T, delete, DPD"
deploy/tests/lab_swan_ikev1.sh | tee -a target/lab-output.txt

step "seeds 000/001 in the lab: IKEv1 VTIs (IPv6 and IPv4 outer) between two Espada gateways"
deploy/tests/lab_vti.sh | tee -a target/lab-output.txt

step "seed 003 in the lab: dynamic crypto map hub, spoke behind NAT, NAT exemption and PAT, clear, DPD"
deploy/tests/lab_seed003.sh | tee -a target/lab-output.txt

step "seed 003's spoke re-leases its address: no NAT, onto a NAT, new NAT ports; the hub replaces the stale SAs"
deploy/tests/lab_release.sh | tee -a target/lab-output.txt

step "the same over IKEv2: a dynamic map with a wildcard keyring; the hub replaces the stale CHILD_SAs"
IKE=v2 deploy/tests/lab_release.sh | tee -a target/lab-output.txt

step "IKEv2 interop with strongSwan (kernel-libipsec): both roles, four suites, asymmetric keys, rekeys, DPD, NAT-T"
deploy/tests/lab_swan_ikev2.sh | tee -a target/lab-output.txt

step "seed 002 in the lab: IKEv2 over a VTI between two Espada gateways, IKE SA rekey at lifetime 120"
deploy/tests/lab_seed002.sh | tee -a target/lab-output.txt

step "seed 004 in the lab: Tunnel Endpoint Discovery between two Espada gateways"
deploy/tests/lab_ted.sh | tee -a target/lab-output.txt

step "espada-bench gen/sink: veth, tool errors, through the two gateways, pre-encrypted ESP to gw_b"
ESPADA_BENCH=target/release/espada-bench deploy/tests/lab_gen.sh | tee -a target/lab-output.txt

step "seed 004 with three gateways: TED between every pair, forged answers ignored, engine connections"
deploy/tests/lab_ted3.sh | tee -a target/lab-output.txt

step "benchmark smoke run (figures are not asserted; see espada-bench)"
target/release/espada-bench crypto --quick --suites aes128-sha1,aes128gcm16 --sizes 64,imix >/dev/null
target/release/espada-bench ike --quick >/dev/null
target/release/espada-bench ike --ikev2 --quick >/dev/null
# The report on a copy of the page (crypto, scale and ike, short; no lab):
# it must regenerate its section and draw its plots (~5 s).
smoke=$(mktemp -d /tmp/espada-report-smoke.XXXXXX)
cp docs/performance.md "$smoke/performance.md"
target/release/espada-bench report --quick --doc "$smoke/performance.md" --plots "$smoke/bench" >/dev/null
grep -q '^<!-- END espada-bench report -->' "$smoke/performance.md"
[ -s "$smoke/bench/scale-sas.svg" ] && [ -s "$smoke/bench/report.json" ]
rm -rf "$smoke"

step "summary"
passed=$(cat target/test-output.txt target/lab-output.txt | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(cat target/test-output.txt target/lab-output.txt | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "summary: $passed passed, $failed failed in $((SECONDS / 60)) min $((SECONDS % 60)) s"
