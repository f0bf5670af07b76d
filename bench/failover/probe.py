#!/usr/bin/env python3
"""Client probe for the failover benchmark (stdlib only).

Runs in the client namespace.  Every INTERVAL (10 ms) it starts, in its own
thread, one attempt: TCP connect to VIP:PORT (connect timeout 50 ms), GET
/node.txt, read the answer (100 ms in total).  Each attempt is recorded as
(monotonic start time, ok, node that answered).  Attempts are started on a
fixed cadence, so a slow failing attempt does not lower the resolution.

It stops after --duration seconds or when --stop-file appears.  The runner
writes the fault window into --fault-file as "START END" (CLOCK_MONOTONIC
seconds, START taken just before the fault is injected, END just after).

outage = first success after the fault - last success before the fault
  * first success after: the first ok attempt started at/after START that was
    answered by another node than the last one before START (if no other node
    ever answers: the first ok attempt started after END);
  * last success before: the ok attempt just before it (an answer of the old
    node to an attempt started while the fault was being injected is still
    "before": the node was not yet cut off).
So the outage is the gap between two consecutive successes that spans the
fault.  Times are attempt start times.

Other modes:
  --once HOST   one GET, prints the node name, exit 0 if answered
  --now         prints CLOCK_MONOTONIC (the clock used for the samples)
  --reach HOST  exit 0 if HOST answers on TCP PORT (an RST counts)
"""
import argparse
import json
import os
import socket
import sys
import threading
import time

PORT = 8080


def attempt(host, port, connect_timeout, total_timeout):
    """One probe: returns the node name, or None on any failure."""
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=connect_timeout) as s:
            left = total_timeout - (time.monotonic() - t0)
            if left <= 0:
                return None
            s.settimeout(left)
            s.sendall(b"GET /node.txt HTTP/1.0\r\nHost: vip\r\n\r\n")
            data = b""
            while True:
                left = total_timeout - (time.monotonic() - t0)
                if left <= 0:
                    return None
                s.settimeout(left)
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
                if len(data) > 65536:
                    return None
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        return None
    node = body.decode("ascii", "replace").strip()
    return node or None


def read_fault(path):
    try:
        with open(path) as f:
            parts = f.read().split()
        return float(parts[0]), float(parts[1])
    except (OSError, ValueError, IndexError):
        return None


def analyse(samples, fault):
    """samples: list of (t, ok, node) sorted by t; fault: (start, end) or None."""
    oks = [s for s in samples if s[1]]
    res = {
        "attempts": len(samples),
        "successes": len(oks),
        "failures": len(samples) - len(oks),
        "first_t": samples[0][0] if samples else None,
        "last_t": samples[-1][0] if samples else None,
    }
    gaps = [(b[0] - a[0], a, b) for a, b in zip(oks, oks[1:])]
    if gaps:
        g = max(gaps, key=lambda x: x[0])
        res["max_gap_ms"] = round(g[0] * 1000, 1)
    if fault is None:
        res["error"] = "no fault time recorded"
        return res
    fs, fe = fault
    res["fault_start"], res["fault_end"] = fs, fe
    before = [s for s in oks if s[0] < fs]
    if not before:
        res["error"] = "no success before the fault"
        return res
    old = before[-1][2]
    res["node_before"] = old
    # First answer of another node after the fault starts; failing that, the
    # first answer after the fault window (the same node came back).
    after = [s for s in oks if s[0] >= fs and s[2] != old] or \
        [s for s in oks if s[0] > fe]
    if not after:
        res["error"] = "no success after the fault"
        res["outage_ms"] = None
        return res
    # The last success before it: an answer of the old node that started
    # while the fault was being injected is still "before" the outage.
    last = [s for s in oks if s[0] < after[0][0]][-1]
    first = after[0]
    res["node_after"] = first[2]
    res["outage_ms"] = round((first[0] - last[0]) * 1000, 1)
    res["last_ok_before_ms"] = round((last[0] - fs) * 1000, 1)
    res["first_ok_after_ms"] = round((first[0] - fs) * 1000, 1)
    res["failed_attempts_in_outage"] = sum(
        1 for s in samples if last[0] < s[0] < first[0] and not s[1])
    return res


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def run(args):
    samples = []
    lock = threading.Lock()
    last_node = [None]

    def one(t_start):
        node = attempt(args.target, args.port, args.connect_timeout, args.timeout)
        with lock:
            samples.append((t_start, node is not None, node))
            if node is not None and args.state_file and node != last_node[0]:
                last_node[0] = node
                write_atomic(args.state_file, node + "\n")

    interval = args.interval
    t_end = time.monotonic() + args.duration
    nxt = time.monotonic()
    threads = []
    while True:
        now = time.monotonic()
        if now >= t_end or (args.stop_file and os.path.exists(args.stop_file)):
            break
        if now < nxt:
            time.sleep(nxt - now)
            continue
        th = threading.Thread(target=one, args=(time.monotonic(),), daemon=True)
        th.start()
        threads.append(th)
        threads = [x for x in threads if x.is_alive()]
        nxt += interval
        if nxt < now - interval:      # we fell behind (CPU starvation): skip
            nxt = now + interval
    for th in threads:
        th.join(args.timeout + 1.0)
    with lock:
        samples.sort(key=lambda s: s[0])
        fault = read_fault(args.fault_file) if args.fault_file else None
        res = analyse(samples, fault)
    res["interval_ms"] = interval * 1000
    res["connect_timeout_ms"] = args.connect_timeout * 1000
    res["timeout_ms"] = args.timeout * 1000
    if args.samples:
        with open(args.samples, "w") as f:
            for t, ok, node in samples:
                f.write(f"{t:.6f} {int(ok)} {node or '-'}\n")
    out = json.dumps(res)
    if args.out:
        write_atomic(args.out, out + "\n")
    print(out)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--once", metavar="HOST")
    p.add_argument("--now", action="store_true")
    p.add_argument("--reach", metavar="HOST", help="exit 0 if HOST answers TCP (even RST)")
    p.add_argument("--target", default="198.18.1.100")
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--interval", type=float, default=0.010)
    p.add_argument("--connect-timeout", type=float, default=0.050)
    p.add_argument("--timeout", type=float, default=0.100)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--stop-file")
    p.add_argument("--fault-file")
    p.add_argument("--state-file", help="rewritten with the node name when it changes")
    p.add_argument("--samples", help="write every attempt: T OK NODE")
    p.add_argument("--out", help="write the JSON result here too")
    args = p.parse_args()
    if args.now:
        print(f"{time.monotonic():.6f}")
        return 0
    if args.reach:
        try:
            socket.create_connection((args.reach, args.port), timeout=0.5).close()
        except ConnectionRefusedError:
            return 0            # an RST came back: the host is reachable
        except OSError:
            return 1
        return 0
    if args.once:
        node = attempt(args.once, args.port, 0.5, 1.0)
        if node is None:
            return 1
        print(node)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
