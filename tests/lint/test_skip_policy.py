"""Skipped tests are visible, not green: a pytest file that skips exits 77 (ctest: "Skipped"), and
on CI any skip outside the gpu label fails the run."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_skips", ROOT / "scripts" / "check_skips.py")
check_skips = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_skips)


def run_pytest(tmp_path, body):
    test = tmp_path / "test_sample.py"
    test.write_text("import pytest\n\n" + body)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "skip_policy",
                           str(test)], cwd=tmp_path, env=env, capture_output=True, text=True).returncode


def test_a_file_with_a_skip_exits_77_and_a_clean_one_0(tmp_path):
    assert run_pytest(tmp_path, "def test_a():\n    pass\n\ndef test_b():\n    pytest.skip('peer missing')\n") == 77
    assert run_pytest(tmp_path, "def test_a():\n    pass\n") == 0
    assert run_pytest(tmp_path, "def test_a():\n    assert False\n\ndef test_b():\n    pytest.skip('x')\n") == 1


def test_ci_fails_on_skips_outside_the_gpu_label(tmp_path):
    junit = tmp_path / "results.xml"
    junit.write_text('<testsuite><testcase name="parity.test_model"><skipped message="peer missing"/></testcase>'
                     '<testcase name="gpu.kernels"><skipped message="no device"/></testcase>'
                     '<testcase name="unit.ok"/></testsuite>')
    skipped = check_skips.skipped_tests(junit)
    assert [name for name, _ in skipped] == ["parity.test_model", "gpu.kernels"]
    labels = {"parity.test_model": ["parity"], "gpu.kernels": ["gpu"], "unit.ok": ["unit"]}
    assert check_skips.failing_skips(skipped, labels) == ["parity.test_model"]
    assert check_skips.failing_skips([s for s in skipped if s[0] == "gpu.kernels"], labels) == []
