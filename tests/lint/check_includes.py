#!/usr/bin/env python3
"""Include lint: a module may include only its own headers and those of the modules it links.

The graph is the one src/CMakeLists.txt declares with tune_add_module(<name> ... DEPS tune_x ...):
a module may use the headers of its DEPS and, transitively, of theirs (the link graph). Checked:
  #include "tune/<m>/..."   public header of module m
  #include "<m>/..."        private header of module m (src/<m>/), only from module m itself
in src/<module>/ and include/tune/<module>/. Prints every violation as file:line and exits 1.
"""
import re
import sys
from pathlib import Path

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
MODULE_RE = re.compile(r"tune_add_module\(\s*(\w+)([^)]*)\)", re.S)
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
ALWAYS = {"version.h"}  # generated into the build tree, part of core


def declared_graph(cmake_text):
    graph = {}
    for name, args in MODULE_RE.findall(cmake_text):
        deps = []
        m = re.search(r"\bDEPS\b(.*?)(?:\bLIBS\b|$)", args, re.S)
        if m:
            deps = [d[len("tune_"):] for d in m.group(1).split() if d.startswith("tune_")]
        graph[name] = deps
    return graph


def closure(graph, name, seen=None):
    seen = set() if seen is None else seen
    for dep in graph.get(name, []):
        if dep not in seen:
            seen.add(dep)
            closure(graph, dep, seen)
    return seen


def violations(root):
    graph = declared_graph((root / "src" / "CMakeLists.txt").read_text())
    modules = set(graph)
    out = []
    for module in sorted(modules):
        allowed = closure(graph, module) | {module}
        files = []
        for base in (root / "src" / module, root / "include" / "tune" / module):
            if base.is_dir():
                files += [p for p in base.rglob("*") if p.suffix in (".cpp", ".h", ".cu", ".cuh")]
        for path in sorted(files):
            for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                target = m.group(1)
                parts = target.split("/")
                if target in ALWAYS or target == "tune/version.h":
                    continue
                if parts[0] == "tune" and len(parts) > 2:
                    used, kind = parts[1], "public"
                elif parts[0] in modules and len(parts) > 1:
                    used, kind = parts[0], "private"
                else:
                    continue
                rel = path.relative_to(root)
                if kind == "private" and used != module:
                    out.append(f"{rel}:{lineno}: {module} includes {target}, a private header of module {used}")
                elif used not in allowed:
                    out.append(f"{rel}:{lineno}: {module} includes {target}, but {module} does not link tune_{used} "
                               f"(its DEPS in src/CMakeLists.txt allow: {', '.join(sorted(allowed))})")
    return graph, out


def main():
    graph, found = violations(ROOT)
    if not graph:
        print("check_includes: no tune_add_module() found in src/CMakeLists.txt", file=sys.stderr)
        return 1
    for v in found:
        print(v)
    print(f"check_includes: {len(graph)} modules, {len(found)} violations")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
