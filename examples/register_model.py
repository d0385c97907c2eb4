"""Adds (or replaces) a classifier in examples/models/index.json with the figures
`python -m mdfi.evaluate` measures for it now, and stores them in its record.

    python examples/register_model.py examples/models/fmnist_branchy_lenet \
        --dataset fashion-mnist --kind early-exit [--weights-ext .weights]

The claims are what `python -m mdfi.evaluate --index` re-checks: n, accuracy,
MACs, FLOPs and BOPs per image, each gated layer's measured share and, for a network with exits, each exit's share, under the
network's own policy and thresholds (its cfg) and under every other policy it
can run (with the same thresholds).  The record (PREFIX.json) gets the same
figures as "mdfi_evaluate", with the command, so that the index and the record
agree (tests/test_evaluate_cli.py checks it).  Times are not claims.
"""
import argparse
import json
import pathlib
import sys

import mdfi
from mdfi import datasets
from mdfi.evaluate import evaluate, exit_policies

INDEX = pathlib.Path(__file__).resolve().parent / "models" / "index.json"


def claims_of(result):
    c = {"n": result["n"], "accuracy": result["accuracy"],
         "macs_per_image": result["macs_per_image"]}
    for k in ("flops_per_image", "bops_per_image"):
        if k in result:
            c[k] = result[k]
    if result.get("exits"):
        c["shares"] = [e["share"] for e in result["exits"]]
    if result.get("gates"):
        c["gate_shares"] = [g["share"] for g in result["gates"]]
    return c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prefix", help="the model, without .cfg/.weights")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--kind", required=True, help="float, xnor, early-exit, early-exit-int8...")
    ap.add_argument("--weights-ext", default=".weights", help=".weights or .qweights")
    ap.add_argument("--index", default=str(INDEX))
    args = ap.parse_args(argv)
    prefix = pathlib.Path(args.prefix)
    index_path = pathlib.Path(args.index)
    cfg, weights = prefix.with_suffix(".cfg"), prefix.with_name(prefix.name + args.weights_ext)
    data = datasets.load(args.dataset, train=False)
    with mdfi.Network(cfg, weights, threads=1) as net:
        main_result = evaluate(net, data)
        claims = claims_of(main_result)
        if net.exits:
            claims["policy"] = main_result["policy"]
            claims["policies"] = {}
            for policy in ["none", *exit_policies(net)]:
                if policy != main_result["policy"]:
                    claims["policies"][policy] = claims_of(evaluate(net, data, policy=policy))
    record_path = prefix.with_suffix(".json")
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    command = "python examples/register_model.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    record["mdfi_evaluate"] = dict(claims, command=command, kernel=net.kernel)
    record.setdefault("cfg", cfg.name)
    record.setdefault("weights", weights.name)
    record.setdefault("dataset", args.dataset)
    record.setdefault("variant", args.kind)
    if record["variant"] != args.kind:   # a trainer's variant name beside the index's kind
        record["kind"] = args.kind
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    entry = {"name": prefix.name, "cfg": cfg.name, "weights": weights.name,
             "dataset": args.dataset, "kind": args.kind, "record": record_path.name,
             "claims_from": "mdfi_evaluate", "claims": claims}
    index = json.loads(index_path.read_text())
    models = [m for m in index["models"] if m["name"] != prefix.name]
    index["models"] = models + [entry]
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    print(json.dumps(entry, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
