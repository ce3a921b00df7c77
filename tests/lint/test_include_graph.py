"""The module graph of src/CMakeLists.txt is enforced: no module includes a header of a module it
does not link (transitively), nor another module's private src/ header."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_includes", ROOT / "tests" / "lint" / "check_includes.py")
check_includes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_includes)


def test_the_source_tree_follows_the_declared_graph():
    graph, found = check_includes.violations(ROOT)
    assert {"core", "io", "text", "model", "train", "algo", "cli"} <= set(graph)
    assert found == []


def write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_an_include_against_the_graph_is_reported(tmp_path):
    write(tmp_path / "src" / "CMakeLists.txt",
          "tune_add_module(core LIBS fmt::fmt)\n"
          "tune_add_module(text DEPS tune_core LIBS PkgConfig::PCRE2)\n"
          "tune_add_module(model TORCH DEPS tune_core)\n"
          "tune_add_module(algo TORCH DEPS tune_model tune_text)\n")
    write(tmp_path / "src" / "model" / "a.cpp", '#include "tune/core/x.h"\n#include "tune/text/tokenizer.h"\n')
    write(tmp_path / "include" / "tune" / "text" / "b.h", '#include "tune/model/causal_lm.h"\n')
    write(tmp_path / "src" / "algo" / "c.cpp",
          '#include "tune/core/x.h"\n#include "tune/text/y.h"\n#include "model/private.h"\n')
    _, found = check_includes.violations(tmp_path)
    assert len(found) == 3, found
    assert found[0].startswith("src/algo/c.cpp:3: algo includes model/private.h, a private header")
    assert any(f.startswith("include/tune/text/b.h:1: text includes tune/model/causal_lm.h") for f in found)
    assert any(f.startswith("src/model/a.cpp:2: model includes tune/text/tokenizer.h") for f in found)
