#!/usr/bin/env python3
"""Runs each pair of commands (ours, the peer) alternately, several times, in the same run, and prints
the median wall time and median peak memory (max RSS of the process itself, from wait4) of each, with
ratios against the targets. Exits 1 when a target is missed.

Input (stdin): JSON list of {"name", "ours": [argv], "peer": [argv], "time": max ratio, "memory": max
ratio or null, "ok_codes": [exit codes that count as success for ours]}.
"""
import json
import os
import statistics
import subprocess
import sys
import time


def measure(argv, ok_codes):
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode not in ok_codes:
        sys.exit(f"bench: {' '.join(argv)} exited {proc.returncode}: {err.strip()[:500]}")
    return wall, usage.ru_maxrss / 1024.0  # KiB -> MiB


def main():
    runs = int(os.environ.get("BENCH_RUNS", "9"))
    pairs = json.load(sys.stdin)
    missed = []
    header = f"{'comparison':<58} {'ours ms':>8} {'peer ms':>8} {'time':>6} {'target':>7}  {'ours MiB':>8} {'peer MiB':>8} {'memory':>6} {'target':>7}"
    print(header)
    print("-" * len(header))
    for pair in pairs:
        ok = pair.get("ok_codes", [0])
        ours, peer = [], []
        measure(pair["ours"], ok)  # warm the page cache and any discovery caches
        measure(pair["peer"], [0])
        for _ in range(runs):
            ours.append(measure(pair["ours"], ok))
            peer.append(measure(pair["peer"], [0]))
        o_t = statistics.median(t for t, _ in ours)
        p_t = statistics.median(t for t, _ in peer)
        o_m = statistics.median(m for _, m in ours)
        p_m = statistics.median(m for _, m in peer)
        t_ratio, m_ratio = o_t / p_t, o_m / p_m
        t_target, m_target = pair.get("time"), pair.get("memory")
        t_mark = "" if t_target is None else (f"≤{t_target:.2f}" if t_ratio <= t_target else f"MISS {t_target:.2f}")
        m_mark = "" if m_target is None else (f"≤{m_target:.2f}" if m_ratio <= m_target else f"MISS {m_target:.2f}")
        if t_target is not None and t_ratio > t_target:
            missed.append(f"{pair['name']}: time {t_ratio:.2f}x > {t_target}x")
        if m_target is not None and m_ratio > m_target:
            missed.append(f"{pair['name']}: memory {m_ratio:.2f}x > {m_target}x")
        print(f"{pair['name']:<58} {o_t*1000:>8.1f} {p_t*1000:>8.1f} {t_ratio:>5.2f}x {t_mark:>7}  {o_m:>8.1f} {p_m:>8.1f} {m_ratio:>5.2f}x {m_mark:>7}")
    print(f"\nmedians of {runs} runs each, ours and peer alternating; ratio = ours / peer")
    if missed:
        print("targets missed:\n  " + "\n  ".join(missed))
        sys.exit(1)


if __name__ == "__main__":
    main()
