"""The Python packages' layers (docs/architecture.md, "Python packages"):

    command line   mdfi.detect, mdfi.classify, mdfi.bench, weights_tools.__main__
    tools          weights_tools (may import the mdfi runtime)
    runtime        every other mdfi module (never imports weights_tools)

Nothing but a command-line module imports a command-line module.  Imports are
read with ast, so imports inside functions count too.
"""
import ast
import importlib
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLI = {"mdfi.detect", "mdfi.classify", "mdfi.bench", "weights_tools.__main__"}


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source, module, is_package=False):
    """One set of absolute module names per imported name in source; for
    `from P import X` the set is {P, P.X} (X may be a submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ({a.name} for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            yield from ({base, base + "." + a.name} for a in node.names)


def _is(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def violations(modules):
    """modules: {name: (source, is_package)} -> the imports that break the layers."""
    bad = []
    for module, (source, is_package) in sorted(modules.items()):
        if module in CLI:
            continue
        for names in imports(source, module, is_package):
            name = max(names, key=len)
            if any(_is(n, c) for n in names for c in CLI):
                bad.append(f"{module} imports the command-line module {name}")
            elif _is(module, "mdfi") and any(_is(n, "weights_tools") for n in names):
                bad.append(f"runtime module {module} imports {name}")
    return bad


def _our_modules():
    paths = [p for pkg in ("mdfi", "weights_tools") for p in (ROOT / pkg).rglob("*.py")]
    return {_module_name(p): (p.read_text(), p.name == "__init__.py") for p in paths}


def test_runtime_never_imports_the_tools_and_nobody_imports_the_command_line():
    bad = violations(_our_modules())
    assert not bad, "\n".join(bad)


def test_the_command_line_modules_exist():
    assert CLI <= set(_our_modules())


def test_the_check_catches_wrong_imports():
    made_up = {
        "mdfi.network": ("def f():\n    from weights_tools.quantize import cached_int8\n", False),
        "mdfi.image": ("import weights_tools\n", False),
        "mdfi.pipeline": ("from . import detect\n", False),            # a CLI module
        "weights_tools.calibrate": ("from mdfi.bench import main\n", False),
        "weights_tools.quantize": ("from ..__main__ import main\n", True),
        "weights_tools.evaluate": ("from mdfi.image import load\nimport mdfi\n", False),  # fine
        "mdfi.detect": ("from weights_tools.quantize import cached_int8\n", False),     # fine
    }
    assert len(violations(made_up)) == 5, violations(made_up)


def test_detect_is_the_function_after_importing_its_module():
    """`import mdfi.detect` (the module of `python -m mdfi.detect`) leaves
    mdfi.detect the function; so for classify."""
    import mdfi
    from mdfi import pipeline
    for name in ("detect", "classify"):
        importlib.import_module("mdfi." + name)
        assert getattr(mdfi, name) is getattr(pipeline, name)


def test_detect_is_the_function_after_running_the_command_line_in_process():
    code = ("import runpy, sys, mdfi, mdfi.pipeline\n"
            "for m in ('mdfi.detect', 'mdfi.classify'):\n"
            "    sys.argv = [m, '--help']\n"
            "    try:\n"
            "        runpy.run_module(m, run_name='__main__', alter_sys=True)\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0, e.code\n"
            "assert mdfi.detect is mdfi.pipeline.detect, mdfi.detect\n"
            "assert mdfi.classify is mdfi.pipeline.classify, mdfi.classify\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.endswith("ok\n"), res.stderr
