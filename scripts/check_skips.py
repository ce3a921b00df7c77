#!/usr/bin/env python3
"""After ctest: lists the tests that were skipped (a skipped test is not a passed one) and, on CI
(CI=true), fails when any of them is not a GPU test (label gpu) on a machine without a GPU.

  check_skips.py BUILD_DIR JUNIT_XML
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET


def labels_by_test(build_dir):
    out = subprocess.run(["ctest", "--show-only=json-v1"], cwd=build_dir, capture_output=True, text=True, check=True)
    labels = {}
    for t in json.loads(out.stdout).get("tests", []):
        props = {p["name"]: p["value"] for p in t.get("properties", [])}
        labels[t["name"]] = props.get("LABELS", [])
    return labels


def skipped_tests(junit_path):
    root = ET.parse(junit_path).getroot()
    return [(case.get("name"), (case.find("skipped").get("message") or ""))
            for case in root.iter("testcase") if case.find("skipped") is not None]


def failing_skips(skipped, labels):
    """The skipped tests that fail a CI run: all but those labelled gpu."""
    return [name for name, _ in skipped if "gpu" not in labels.get(name, [])]


def main():
    build_dir, junit = sys.argv[1], sys.argv[2]
    skipped = skipped_tests(junit)
    if not skipped:
        print("check_skips: no test was skipped")
        return 0
    labels = labels_by_test(build_dir)
    on_ci = os.environ.get("CI") == "true"
    bad = failing_skips(skipped, labels)
    print(f"check_skips: {len(skipped)} test(s) skipped, which is not passing:")
    for name, why in skipped:
        print(f"  {name} [{', '.join(labels.get(name, []))}] {why}".rstrip())
    if on_ci and bad:
        print(f"check_skips: CI=true and {len(bad)} non-GPU test(s) skipped: failing the run "
              "(install what they need: scripts/setup.sh)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
