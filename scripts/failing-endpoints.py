#!/usr/bin/env python3
"""Groups the endpoints of one clock that miss their target by block, from a routed
nextpnr-ice40 design: nextpnr 0.4 names only the one critical path per clock, and this says
where the rest are.

Usage: scripts/failing-endpoints.py CELLS_JSON REPORT_JSON CLOCK MHZ [DEPTH]
  CELLS_JSON   written by scripts/nextpnr-dump-cells.py (--post-route)
  REPORT_JSON  nextpnr's --report with --detailed-timing-report
  CLOCK        a substring of the clock net (core.clock)
  MHZ          the target
  DEPTH        hierarchy levels of the cell name to group by (default 2: core.<block>)

The detailed report gives, per net endpoint, the arrival time at that endpoint (ns); an
endpoint is a flip-flop's (DFF_ENABLE) or a block RAM's input, and misses the target when
arrival + setup (0.45 ns, about the LUT-plus-setup of an iCE40 HX LC) exceeds the period.
This approximates nextpnr's own slack (its setup times vary by pin by about 0.2 ns).
"""
import collections
import json
import sys

SETUP_NS = 0.45


def main():
    cells = json.load(open(sys.argv[1]))
    rep = json.load(open(sys.argv[2]))
    clk, period = sys.argv[3], 1000 / float(sys.argv[4])
    depth = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    ends = {}
    for net in rep["detailed_net_timings"]:
        for e in net["endpoints"]:
            if clk not in e.get("event", ""):
                continue
            c = cells.get(e["cell"])
            if c is None:
                continue
            seq = (c["type"] == "ICESTORM_LC" and c["params"].get("DFF_ENABLE") == "1") or c["type"] == "ICESTORM_RAM"
            if not seq:
                continue
            key = (e["cell"], e["port"])
            t = e["delay"] + SETUP_NS
            if t > ends.get(key, (0.0, None, None))[0]:
                ends[key] = (t, net["net"], net["driver"])
    fail = sorted((period - t, k, n) for k, (t, n, _) in ends.items() if t > period)
    worst = fail[0][0] if fail else 0.0
    print(f"{len(ends)} endpoints on {clk}; {len(fail)} miss {1000 / period:.0f} MHz; worst slack {worst:.2f} ns")
    block = lambda name: ".".join(name.split("$")[0].split(".")[:depth])
    count = collections.Counter(block(k[0]) for _, k, _ in fail)
    worst_of = {}
    for s, k, _ in fail:
        worst_of.setdefault(block(k[0]), s)
    for b, n in count.most_common():
        print(f"  {b:40s} {n:5d}  worst {worst_of[b]:6.2f} ns")
    print("most frequent (endpoint register, pin, net):")
    pins = collections.Counter((k[0].split("$")[0], k[1], n[:60]) for _, k, n in fail)
    for (c, p, n), m in pins.most_common(15):
        print(f"  {m:4d}  {c}.{p} <- {n}")


if __name__ == "__main__":
    main()
