"""Stores in a committed model's record its PyTorch accuracy on the first N test
images ("test_subset"), so that the test suite can re-check the model on those N
images instead of all of them (tests/test_examples.py).

    python examples/record_test_subset.py examples/models/fmnist_vgg.json [...] --first 2000

The subset is the first N images of the official test split, in file order: no
image is chosen by how the model does on it.  The figure pins the committed
weights (another model gives another accuracy on the same images); the record's
full-test-set figures stay what `python -m mdfi.evaluate --index` re-checks.
"""
import argparse
import importlib.util
import json
import pathlib
import sys

import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parent


def _load(name):
    spec = importlib.util.spec_from_file_location("mdfi_examples_" + name, EXAMPLES / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("records", nargs="+", help="examples/models/NAME.json")
    ap.add_argument("--first", type=int, default=2000, help="how many test images (default 2000)")
    args = ap.parse_args(argv)
    datasets, train = _load("datasets"), _load("train_classifier")
    from weights_tools.torch import import_darknet
    cache = {}
    for path in map(pathlib.Path, args.records):
        text = path.read_text()
        r = json.loads(text)
        ds = r.get("dataset") or path.stem.rsplit("_", 1)[0]
        if ds not in cache:
            cache[ds] = datasets.load(ds)
        data = cache[ds]
        if args.first > len(data.y_test):
            sys.exit("%s: the test split has only %d images" % (path, len(data.y_test)))
        x, y = data.x_test[:args.first], data.y_test[:args.first]
        model = import_darknet(path.parent / r["cfg"], path.parent / r["weights"])
        acc = float(np.mean(train.predict(model, x) == y))
        r["test_subset"] = {"first": args.first, "pytorch_accuracy": round(acc, 6),
                            "command": "python examples/record_test_subset.py "
                                       "examples/models/%s --first %d" % (path.name, args.first)}
        path.write_text(json.dumps(r, indent=1) + ("\n" if text.endswith("\n") else ""))
        print("%s: %.4f on the first %d test images" % (path.stem, acc, args.first))


if __name__ == "__main__":
    main()
