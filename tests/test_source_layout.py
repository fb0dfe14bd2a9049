"""The layering of ``src/`` and ``python/keycell/`` holds:

- every import between top-level modules goes in a direction the tables below allow (Rust
  ``use crate::...`` paths in ``src/``, Python imports in ``python/keycell/``, those inside
  functions included), so each layer only uses the ones below it; and no two Rust files,
  nor two Python modules, need each other (directly or around a longer circle);
- ``unsafe`` code is allowed in ``src/memory/``, ``src/sys.rs``, ``src/kernels/`` (the one
  module of accelerated kernels) and the two buffer-protocol glue files of the bindings,
  and only there (the lints in ``Cargo.toml`` deny it elsewhere
  and demand a ``SAFETY`` comment on every block);
- nothing below ``src/py`` imports PyO3; Python exceptions are imported in
  ``src/py/exceptions.rs`` and built only in ``src/py/errors.rs``.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PY = ROOT / "python" / "keycell"

# Where `unsafe` is allowed: the memory layer, the system-call module, the accelerated
# kernels (calls into code compiled for a CPU feature, after the run-time check) and the
# buffer glue.
UNSAFE_DIRS = ("memory/", "kernels/")
UNSAFE_FILES = {"sys.rs", "py/view.rs", "py/buffer_in_place.rs"}
# The files that lift the crate-wide `unsafe_code = "deny"`, each for its whole module.
UNSAFE_ALLOWED_BY = {
    "memory/mod.rs",
    "kernels/mod.rs",
    "sys.rs",
    "py/view.rs",
    "py/buffer_in_place.rs",
}

# Allowed import directions between the top-level modules of `src/` (module -> the modules
# it may use). Bottom to top: memory and kernels (accelerated arithmetic, using nothing);
# sys, fs, encoding, json (low, plain helpers); crypto over memory and kernels; the
# features over crypto, memory and the low modules; the agent over the features; the
# bindings (py) over everything, and nothing imports them but lib.rs.
_LOW = {"sys", "fs", "encoding", "json"}
_FEATURES = {"keyfile", "store", "audit", "otp", "keyring", "pkcs11"}
_BELOW_FEATURES = {"crypto", "memory"} | _LOW
RUST_ALLOWED: dict[str, set[str]] = {
    "memory": set(),
    "sys": set(),
    "encoding": set(),
    "json": set(),
    "fs": {"sys"},
    "kernels": set(),  # accelerated arithmetic (X25519 on BMI2/ADX), used by crypto
    "crypto": {"memory", "encoding", "kernels"},
    **{f: set(_BELOW_FEATURES) for f in _FEATURES},
    "agent": _FEATURES | _BELOW_FEATURES,
    "py": _FEATURES | _BELOW_FEATURES | {"agent"},
    "test_dir": {"memory"},  # the unit tests' temporary directories (cfg(test))
    "": {"py", "memory"},  # lib.rs: the #[pymodule] and the global allocator
}

# Allowed import directions between the top-level modules of `python/keycell/` (a package
# such as `cli/` is one row; `__init__` is the package itself). Bottom to top: the compiled
# module, the exceptions and plain helpers; the key protocols and the isolation scope over
# the compiled module; the feature modules over those (the agent, `agent_server` (serve)
# under `agent` (the client, which re-exports it), may use the other features, as in
# Rust); `jose` (JWS, JWT, JWK) over the keys of all of them; the package's `__init__`
# re-exports them; `doctor` and the CLI are programs over the package, and `__main__`
# runs the CLI.
_PY_BASE = {"_native", "exceptions", "_smaps", "_text_refusal"}
_PY_SUPPORT = _PY_BASE | {"_isolation_scope", "key_protocols"}
_PY_FEATURES = {"audit", "keyring", "otp", "pkcs11"}
PY_ALLOWED: dict[str, set[str]] = {
    "_native": set(),
    "exceptions": set(),
    "_smaps": set(),
    "_text_refusal": set(),
    "_isolation_scope": {"_native", "exceptions"},
    "key_protocols": {"_native", "exceptions"},
    **{f: set(_PY_SUPPORT) for f in _PY_FEATURES},
    "agent_server": _PY_SUPPORT | _PY_FEATURES,
    "agent": _PY_SUPPORT | _PY_FEATURES | {"agent_server"},
    # Adapters to other libraries (token formats of itsdangerous and Django, pyca objects,
    # joserfc keys), each over the compiled module and the exceptions.
    "compat": set(_PY_SUPPORT),
    "webhooks": set(_PY_SUPPORT),
    "_lazy": {"_text_refusal"},  # keycell.lazy: a key loaded once per process
    "aio": _PY_SUPPORT | _PY_FEATURES | {"agent", "agent_server"},  # asyncio
    "__init__": _PY_SUPPORT | _PY_FEATURES | {"agent", "agent_server", "_lazy", "jose"},
    "doctor": _PY_SUPPORT | _PY_FEATURES | {"agent", "agent_server", "jose", "__init__"},
    "cli": _PY_SUPPORT | _PY_FEATURES | {"agent", "agent_server", "jose", "__init__", "doctor"},
    # JOSE over the keys (local, token and agent ones): signing and MACs run in keycell.
    "jose": _PY_SUPPORT | {"agent"},
    "__main__": {"cli"},
}


def _module_of(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("").as_posix()
    rel = re.sub(r"(^|/)mod$", "", rel)
    return "" if rel == "lib" else rel.replace("/", "::")


def _code(path: Path) -> str:
    """The file without comments and without its unit tests."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    return re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)


def _imports() -> dict[str, set[str]]:
    files = {_module_of(p): p for p in SRC.rglob("*.rs")}
    mods = set(files)

    def resolve(cur: str, path: str) -> str | None:
        parts = path.split("::")
        if parts[0] == "crate":
            base: list[str] = []
        elif parts[0] in ("super", "self"):
            base = cur.split("::") if cur else []
            if parts[0] == "super":
                base = base[:-1]
            while len(parts) > 1 and parts[1] == "super":
                base = base[:-1]
                parts = parts[1:]
        else:
            return None
        parts = parts[1:]
        for i in range(len(parts), -1, -1):
            m = "::".join(base + parts[:i])
            if m in mods:
                return m
        return None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in files.items():
        code = _code(path)
        paths = re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", code)
        for prefix, items in re.findall(r"\b((?:crate|super)(?:::\w+)*)::\{([^}]*)\}", code):
            paths += [f"{prefix}::{i.strip().split()[0]}" for i in items.split(",") if i.strip()]
        for p in paths:
            t = resolve(m, p)
            if t and t != m and not m.startswith(t + "::") and not t.startswith(m + "::"):
                edges[m].add(t)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_circles() -> None:
    edges = _imports()
    assert edges["py::key_cell"], "the parser must see imports (sanity check)"
    assert _cycles(edges) == []


def test_the_checker_sees_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def _top(module: str) -> str:
    return module.split("::")[0]


def _violations(
    edges: dict[str, set[str]],
    allowed: dict[str, set[str]],
    top: Callable[[str], str] = _top,
) -> list[str]:
    """Every edge between two rows of `allowed` (`top` maps a module to its row) that the
    table does not list."""
    found = set()
    for m, targets in edges.items():
        for t in targets:
            a, b = top(m), top(t)
            if a != b and b not in allowed.get(a, set()):
                found.add(f"{a} -> {b} ({m} uses {t})")
    return sorted(found)


def test_rust_imports_go_only_in_allowed_directions() -> None:
    edges = _imports()
    tops = {_top(m) for m in edges}
    assert tops == set(RUST_ALLOWED), "every top-level module of src/ has one row in the table"
    assert _violations(edges, RUST_ALLOWED) == []


def test_the_direction_checker_sees_a_wrong_direction() -> None:
    edges = {"crypto::hmac": {"memory::buf"}, "memory::buf": {"fs::open"}, "fs::open": set()}
    assert _violations(edges, RUST_ALLOWED) == ["memory -> fs (memory::buf uses fs::open)"]
    assert _violations({"store": {"py::errors"}}, RUST_ALLOWED) == [
        "store -> py (store uses py::errors)"
    ]


def test_unsafe_only_in_memory_sys_and_the_buffer_glue() -> None:
    offenders = []
    for path in SRC.rglob("*.rs"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(UNSAFE_DIRS) or rel in UNSAFE_FILES:
            continue
        if re.search(r"\bunsafe\b", _code(path)):
            offenders.append(rel)
    assert offenders == []


def test_unsafe_is_denied_everywhere_else_and_every_block_is_argued() -> None:
    lints = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))["lints"]
    assert lints["rust"]["unsafe_code"] == "deny"
    assert lints["clippy"]["undocumented_unsafe_blocks"] == "deny"
    lifted = sorted(
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.rs")
        if "allow(unsafe_code)" in p.read_text(encoding="utf-8")
    )
    assert lifted == sorted(UNSAFE_ALLOWED_BY)
    for rel in lifted:
        assert rel.startswith(UNSAFE_DIRS) or rel in UNSAFE_FILES, rel


def test_no_pyo3_below_the_bindings() -> None:
    offenders = [
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.rs")
        if not p.relative_to(SRC).as_posix().startswith("py/")
        and p.name != "lib.rs"
        and re.search(r"\bpyo3\b", _code(p))
    ]
    assert offenders == []


def test_the_gil_is_released_in_one_place() -> None:
    """Only ``src/py/isolation_scope.rs`` calls ``py.detach``: it carries the caller's
    scoped isolation into the closure, so allocations made without the GIL follow it."""
    callers = sorted(
        str(p.relative_to(SRC)) for p in SRC.rglob("*.rs") if ".detach(" in p.read_text()
    )
    assert callers == ["py/isolation_scope.rs"]


def _python_module_of(path: Path) -> str:
    parts = path.relative_to(PY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _python_imports() -> dict[str, set[str]]:
    """Module -> the modules of ``python/keycell`` it imports, anywhere in the file (an
    import inside a function is still a dependency: it is how a circle hides)."""
    files = {_python_module_of(p): p for p in PY.rglob("*.py")}
    mods = set(files) | {"keycell._native"}
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in files.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name
                    while target not in mods and "." in target:
                        target = target.rpartition(".")[0]
                    edges[m].add(target)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    edges[m].add(sub if sub in mods else base)
        edges[m] = {t for t in edges[m] if t in mods and t != m}
    return edges


def test_the_python_package_has_no_import_circles() -> None:
    edges = _python_imports()
    # Sanity checks: relative imports of modules, of names and from the parent resolve.
    assert {"keycell.cli.common", "keycell.cli.otp"} <= edges["keycell.cli.keys"]
    assert {"keycell.audit", "keycell._native"} <= edges["keycell.cli.audit"]
    assert "keycell" in edges["keycell.cli.common"]
    assert _cycles(edges) == []


def _py_row(module: str) -> str:
    """The row of the Python table for a module (`keycell.cli.keys` -> `cli`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_python_imports_go_only_in_allowed_directions() -> None:
    edges = _python_imports()
    rows = {_py_row(m) for m in edges}
    assert rows == set(PY_ALLOWED), "every module of the package has one row in the table"
    assert _violations(edges, PY_ALLOWED, _py_row) == []


def test_the_python_checker_sees_a_wrong_direction() -> None:
    edges = {
        "keycell.otp": {"keycell.exceptions", "keycell.cli.common"},
        "keycell.cli.audit": {"keycell.cli.common", "keycell.audit"},
    }
    assert _violations(edges, PY_ALLOWED, _py_row) == [
        "otp -> cli (keycell.otp uses keycell.cli.common)"
    ]


# `import_exception!`, `SomeError::new_err(...)` or `PyErr::new::<...>(...)`.
_BUILDS_PYTHON_ERROR = re.compile(r"\bimport_exception!|\bnew_err\(|\bPyErr::new\b")


def test_python_exceptions_are_built_only_in_errors_rs() -> None:
    """``src/py/exceptions.rs`` imports every Python exception and ``src/py/errors.rs`` maps
    every layer's error to one with ``From`` (pyca's ``exceptions.rs`` and ``error.rs``);
    every other file returns the bindings' ``Error``. Both files must be seen, so the
    pattern cannot silently stop matching."""
    builders = sorted(
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.rs")
        if _BUILDS_PYTHON_ERROR.search(_code(p))
    )
    assert builders == ["py/errors.rs", "py/exceptions.rs"]
