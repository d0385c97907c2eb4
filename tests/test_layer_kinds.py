"""mdfi.layer_kinds, the one table of Darknet layer kinds, against the C registry
and the Python places that dispatch on kinds."""
import pathlib
import re

from mdfi import layer_kinds as lk

ROOT = pathlib.Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "csrc" / "layers" / "registry.c"
# Section names Darknet accepts that the C registry lacks (none now; [conn] was one).
C_LACKS = set()


def registry_strings(text):
    """Every string literal inside an array initializer (`[] = { ... };`) of the
    C file, comments dropped: the registry's section names and aliases, however
    its rows are laid out."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)
    found = set()
    for body in re.findall(r"\[\s*\w*\s*\]\s*=\s*\{(.*?)\n\s*\};", text, flags=re.S):
        found.update(re.findall(r'"((?:[^"\\]|\\.)*)"', body))
    return found


def test_the_table_agrees_with_the_c_registry():
    c = registry_strings(REGISTRY.read_text())
    ours = lk.section_names("c")
    assert c, "no string literals found in an array of registry.c"
    assert c == ours - (C_LACKS - c), (
        "only in registry.c: %s; only in mdfi/layer_kinds.py (c=True): %s"
        % (sorted(c - ours), sorted(ours - c - C_LACKS)))


def test_the_registry_parser_reads_rows_of_any_shape():
    old = '''static const struct { const char *s; const void *ops; } registry[] = {
        {"convolutional", &conv_ops},   /* "not this" */
        {"conv", &conv_ops},
    };'''
    new = '''const mdfi_layer_kind mdfi_kinds[] = {
        {"maxpool", "max", NULL, MDFI_PASS | MDFI_FIXED},
        {"yolo", NULL, MDFI_HEAD},
    };
    static const char *msg(void) { return "an error"; }'''
    assert registry_strings(old) == {"convolutional", "conv"}
    assert registry_strings(new) == {"maxpool", "max", "yolo"}


def test_every_name_and_alias_is_one_kind():
    seen = [n for k in lk.KINDS for n in (k.name,) + k.aliases]
    assert len(seen) == len(set(seen))
    assert lk.canonical("conv") == "convolutional" and lk.canonical("network") == "net"
    assert lk.canonical("nonsense") == "nonsense" and lk.kind("nonsense") is None


def test_flags_are_consistent():
    for k in lk.KINDS:
        assert not k.gemm or (k.params and k.fixed), k
        assert not k.pass_through or k.fixed, k
        assert not (k.head and k.pass_through), k


def test_the_pytorch_bridge_has_a_module_and_a_builder_for_each_torch_kind():
    import pytest
    pytest.importorskip("torch")
    import weights_tools.torch as wtt
    from weights_tools.torch.importer import _BUILDERS
    # a class may build several sections (Reorg: [reorg] and [reorg3d]); it lists them
    modules = {s for m in vars(wtt).values()
               if isinstance(m, type) and issubclass(m, wtt.DarknetLayer) and m.section
               for s in getattr(m, "sections", (m.section,))}
    assert modules == set(lk.names("torch")) == set(_BUILDERS)


def test_the_fixed_point_tables_come_from_the_table():
    from weights_tools import fixed_ref
    from weights_tools.quantize import graph
    assert set(fixed_ref.HEAD_TYPES) == {"yolo", "softmax", "exit"}
    assert set(graph.GEMM_TYPES) == {"convolutional", "connected"}
    assert set(graph.PASS_THROUGH) == {"maxpool", "upsample", "dropout", "cost"}
    assert set(fixed_ref.IDENTITY_TYPES) == {"dropout", "cost"}
