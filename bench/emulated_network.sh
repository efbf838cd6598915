#!/usr/bin/env bash
# Runs a command inside a private network namespace whose loopback is rate-limited by a
# token-bucket filter: an emulated slow link for MPI (over TCP on that loopback) and for
# PyTorch's gloo, on one machine (issue 12; docs/experiments.md).
#
#   bench/emulated_network.sh [--rate RATE] [--burst BYTES] [--name NS] [--verify [--check]]
#                             [-- COMMAND ...]
#
# RATE uses tc's syntax (100mbit, 1gbit, 10gbit; default 100mbit). The burst defaults to
# max(256 KiB, rate / 100 per second): tbf needs at least rate / HZ, and a 256 KiB burst caps
# a 10 Gbit/s limit near 5 Gbit/s. The limit is on the namespace's ONE loopback, so it is an
# aggregate limit that every flow (both directions of every rank pair) shares, like a shared
# medium: the timed simulator's link_model::shared, not a switched cluster's per-node links.
#
# --verify measures a 1 MiB round trip (1 MiB each way; the mean of 3 in a row, so the bucket's
# burst shows in the first only) and the aggregate rate of 4 parallel flows of 4 MiB over the
# limited loopback, and prints them beside what the rate implies; --check makes an aggregate
# rate above 1.25x the limit an error (the limit is not in effect).
#
# Inside, Open MPI must use TCP on the loopback: the variable SWARMSGD_EMULATED_OMPI_FLAGS holds
# "--mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo". Debian's MPICH
# (4.0, device ch4:ucx) goes over TCP on the loopback with
#   mpiexec.mpich -iface lo -genv UCX_TLS tcp,self -genv UCX_NET_DEVICES lo -genv MPIR_CVAR_NOLOCAL 1
# (MPIR_CVAR_NOLOCAL=1 turns off shared memory between local ranks; checked with the
# loopback's byte counter: 2 KB without these settings, 93 KB with them, for the same test).
#
# Refuses (exit 77, which CTest reports as skipped) when not root or when ip or tc is missing.
# The namespace is deleted on every exit path; no traffic leaves it.
set -euo pipefail

rate=100mbit
burst=""
name="swarmsgd-link-$$"
verify=0
check=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --rate) rate=$2; shift 2 ;;
        --burst) burst=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --verify) verify=1; shift ;;
        --check) check=1; shift ;;
        --) shift; break ;;
        -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "emulated_network.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

if [[ $(id -u) -ne 0 ]]; then
    echo "emulated_network.sh: SKIPPED: needs root to create a network namespace and a tc qdisc" \
         "(running as uid $(id -u))" >&2
    exit 77
fi
for tool in ip tc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "emulated_network.sh: SKIPPED: '$tool' not found (apt-get install iproute2)" >&2
        exit 77
    fi
done

# Rate in bits per second from tc's syntax (kbit, mbit, gbit, bit; k/m/g multipliers of 1000).
rate_bits=$(python3 - "$rate" <<'PY'
import re, sys
m = re.fullmatch(r"([0-9.]+)\s*(bit|kbit|mbit|gbit|tbit)", sys.argv[1].strip().lower())
if not m:
    sys.exit(f"emulated_network.sh: --rate '{sys.argv[1]}' is not <number><bit|kbit|mbit|gbit|tbit>")
print(int(float(m.group(1)) * {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12}[m.group(2)]))
PY
)
if [[ -z $burst ]]; then
    burst=$(( rate_bits / 8 / 100 ))
    (( burst < 262144 )) && burst=262144
fi

cleanup() { ip netns del "$name" 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$name"
ip netns exec "$name" ip link set lo up
ip netns exec "$name" tc qdisc add dev lo root tbf rate "$rate" burst "$burst" latency 50ms
echo "emulated_network.sh: namespace $name, loopback limited to $rate (burst $burst bytes)"

if [[ $verify -eq 1 ]]; then
    ip netns exec "$name" python3 - "$rate_bits" "$check" <<'PY'
import socket, sys, threading, time
rate_bits, check = int(sys.argv[1]), sys.argv[2] == "1"
MIB = 1 << 20

def serve(listener, echo):
    conn, _ = listener.accept()
    with conn:
        got = 0
        while True:
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            got += len(chunk)
            if echo and got == MIB:
                conn.sendall(b"y" * MIB)
                got = 0

def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s

# A 1 MiB round trip: 1 MiB there, 1 MiB back, the mean of 3 in a row.
l = listener()
threading.Thread(target=serve, args=(l, True), daemon=True).start()
c = socket.create_connection(l.getsockname())
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t0 = time.perf_counter()
for _ in range(3):
    c.sendall(b"x" * MIB)
    back = 0
    while back < MIB:
        back += len(c.recv(1 << 16))
best = (time.perf_counter() - t0) / 3
c.close()
expected = 2 * MIB * 8 / rate_bits

# Aggregate rate of 4 parallel one-way flows of 4 MiB each.
flows, size = 4, 4 * MIB
ls = [listener() for _ in range(flows)]
servers = [threading.Thread(target=serve, args=(x, False), daemon=True) for x in ls]
for t in servers:
    t.start()
def send(x):
    with socket.create_connection(x.getsockname()) as s:
        s.sendall(b"z" * size)
t0 = time.perf_counter()
senders = [threading.Thread(target=send, args=(x,)) for x in ls]
for t in senders:
    t.start()
for t in senders:
    t.join()
for t in servers:
    t.join()
aggregate = flows * size * 8 / (time.perf_counter() - t0)
print(f"emulated link: 1 MiB round trip {best * 1e3:.1f} ms (the rate implies {expected * 1e3:.1f} ms,"
      f" ratio {best / expected:.2f}); {flows} flows together {aggregate / 1e6:.1f} Mbit/s"
      f" (limit {rate_bits / 1e6:.1f} Mbit/s, ratio {aggregate / rate_bits:.2f})")
if check and aggregate > 1.25 * rate_bits:
    sys.exit("emulated_network.sh: the flows are faster than the limit allows: "
             "the rate limit is not in effect")
PY
fi

if [[ $# -gt 0 ]]; then
    export SWARMSGD_EMULATED_OMPI_FLAGS="--mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo"
    ip netns exec "$name" env SWARMSGD_EMULATED_OMPI_FLAGS="$SWARMSGD_EMULATED_OMPI_FLAGS" "$@"
fi
