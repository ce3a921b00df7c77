"""Differential check of our safetensors reader against the Python reference library.

  .venv/bin/python tests/fuzz/differential.py build-fuzz/bin/st_verdict DIR [DIR...]

Runs both on every file in the directories (e.g. the corpus a fuzzing run grew) and prints how
often they agree, plus each kind of disagreement with an example file. Expected disagreements are
where this project is stricter on purpose (docs/safetensors.md): duplicate tensor names, unknown
entry fields, and duplicate __metadata__ keys are rejected by us and accepted by the reference.
"""
import collections
import pathlib
import subprocess
import sys

from safetensors import _safetensors_rust as reference

CODES = [
    ("header too small", "HeaderTooSmall"),
    ("header too large", "HeaderTooLarge"),
    ("invalid header length", "InvalidHeaderLength"),
    ("invalid utf-8", "InvalidHeader"),
    ("invalid json", "InvalidHeaderDeserialization"),
    ("invalid offset", "InvalidOffset"),
    ("overflow", "ValidationOverflow"),
    ("subbytes", "MisalignedSlice"),
    ("invalid shape, data type, or offset", "TensorInvalidInfo"),
    ("incomplete metadata", "MetadataIncompleteBuffer"),
]


def reference_verdict(data: bytes) -> str:
    try:
        reference.deserialize(data)
        return "OK"
    except Exception as e:  # the reference raises SafetensorError for every rejection
        text = str(e).lower()
        for needle, code in CODES:
            if needle in text:
                return code
        return "Other: " + str(e)[:80]


def main():
    tool, dirs = sys.argv[1], sys.argv[2:]
    files = sorted(str(p) for d in dirs for p in pathlib.Path(d).iterdir() if p.is_file())
    ours = {}
    for start in range(0, len(files), 500):
        out = subprocess.run([tool, *files[start:start + 500]], check=True, capture_output=True, text=True,
                             errors="replace").stdout
        for line in out.splitlines():
            path, verdict = line.rsplit("\t", 1)
            ours[path] = verdict
    kinds = collections.Counter()
    examples = {}
    agree = 0
    for path in files:
        theirs = reference_verdict(pathlib.Path(path).read_bytes())
        mine = ours[path]
        if mine == theirs:
            agree += 1
        else:
            kinds[(mine, theirs)] += 1
            examples.setdefault((mine, theirs), path)
    print(f"files {len(files)}  agree {agree}  disagree {len(files) - agree}")
    for (mine, theirs), n in kinds.most_common():
        print(f"  ours={mine:30s} reference={theirs:30s} {n:6d}  e.g. {examples[(mine, theirs)]}")


if __name__ == "__main__":
    main()
