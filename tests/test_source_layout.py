"""The layering of ``src/`` holds: no two Rust files need each other (directly or around a
longer circle), ``unsafe`` stays in the memory layer, the system-call module ``src/sys.rs``
and the two buffer-protocol glue files, and nothing below ``src/py`` imports PyO3. No two
modules of ``python/keycell`` need each other either, counting the imports inside
functions."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PY = Path(__file__).resolve().parent.parent / "python" / "keycell"

# Files allowed to contain `unsafe` besides src/memory/: the system calls, the buffer glue.
UNSAFE_GLUE = {"sys.rs", "py/view.rs", "py/buffer_in_place.rs"}


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


def test_unsafe_only_in_memory_sys_and_the_buffer_glue() -> None:
    offenders = []
    for path in SRC.rglob("*.rs"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("memory/") or rel in UNSAFE_GLUE:
            continue
        if re.search(r"\bunsafe\b", _code(path)):
            offenders.append(rel)
    assert offenders == []


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
