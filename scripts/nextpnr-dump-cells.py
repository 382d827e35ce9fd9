# nextpnr-ice40 --post-route script: writes every cell's type, parameters and port nets to
# cells.json in the working directory, so that scripts/failing-endpoints.py can tell flip-flop
# and block-RAM endpoints apart in nextpnr's --detailed-timing-report.
# Usage: nextpnr-ice40 ... --post-route scripts/nextpnr-dump-cells.py --report rep.json --detailed-timing-report
import json

out = {}
for kv in ctx.cells:  # noqa: F821 (nextpnr provides ctx)
    ci = kv.second
    ports = {pk.first: pk.second.net.name for pk in ci.ports if pk.second.net is not None}
    params = {pk.first: str(pk.second) for pk in ci.params}
    out[ci.name] = {"type": ci.type, "ports": ports, "params": params}
json.dump(out, open("cells.json", "w"))
