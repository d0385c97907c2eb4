"""Each exit policy of a branchy model with the thresholds and gates its record
chose for it on validation data: `mdfi.evaluate`'s figures (one thread, the
policy beside `none` in the same run), written to docs/exit-policies-NAME.json.

    python examples/evaluate_policies.py NAME REPEATS
"""
import json, sys
import mdfi
from mdfi import datasets
from mdfi.evaluate import evaluate, set_thresholds
name, repeats = sys.argv[1], int(sys.argv[2])
r = json.load(open(f"examples/models/{name}.json"))
data = datasets.load(r["dataset"], train=False)
out = {}
with mdfi.Network(f"examples/models/{name}.cfg", f"examples/models/{name}.weights") as net:
    own = [(e.threshold, e.entropy_gate, e.exit_gate) for e in net.exits]
    for p in ("branchy", "entropy-predictor", "exit-predictor"):
        c = r["chosen"][p]
        for k, e in enumerate(net.exits):
            net.set_exit_thresholds(k, c["thresholds"][k], c["entropy_gates"][k], c["exit_gates"][k])
        res = evaluate(net, data, policy=p, repeats=repeats)
        out[p] = {k: res[k] for k in ("accuracy", "ms_per_image", "macs_per_image", "speedup_vs_none", "kernel", "threads", "n")}
        out[p]["none"] = res["none"]
        out[p]["shares"] = [e["share"] for e in res["exits"]]
        out[p]["thresholds"] = c
        print(name, p, out[p]["accuracy"], res["none"]["accuracy"], round(res["speedup_vs_none"], 3), out[p]["shares"], flush=True)
out["command"] = f"python examples/evaluate_policies.py {name} {repeats}"
json.dump(out, open(f"docs/exit-policies-{name}.json", "w"), indent=1)
