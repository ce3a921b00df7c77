"""Every tiny preset (configs/*/tiny*.yaml, found by glob: presets added later are covered too) runs
as it is on a fresh checkout: in an empty working directory, with an empty cache, a few steps each.
A preset that starts from another run's output (model.made_by, or made_by of a reward-model term)
first fails saying which command to run, then runs after that command (a few steps of it too). The data its synth: sources generate is byte-identical
to `tune data synth` with the same arguments, and builtin:tiny is `tune init-model --preset tiny
--seed 0`: the learning proofs, which use files, prove what the presets train on."""
import hashlib
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, tune_bin

PRESETS = sorted(ROOT.glob("configs/*/tiny*.yaml"))
# Keys that make a preset fast when it has them (evaluation is also run once at the end).
# grpo.dynamic_sampling off: a producer run of 2 steps solves no prompt, and dynamic sampling would
# (rightly) stop after 5 rounds without a group that has reward variance; no critic warm-up in 2 steps.
FAST = {("grpo", "dynamic_sampling"): False, ("critic", "warmup_steps"): 0, ("eval", "every"): 0, ("eval", "at_start"): False, ("eval", "max_samples"): 16, ("eval", "max_pairs"): 16}


def load(preset):
    return yaml.safe_load(preset.read_text())


def fast_overrides(cfg):
    out = ["--max-steps", "2", "train.threads=1"]
    for (section, key), value in FAST.items():
        if key in (cfg.get(section) or {}):
            out.append(f"{section}.{key}={json.dumps(value)}")
    return out


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Workdir:
    """A fresh working directory and cache, where presets run as a new user runs them."""

    def __init__(self, root):
        self.cwd = root / "work"
        self.cwd.mkdir()
        self.env = {**os.environ, "TUNE_CACHE_DIR": str(root / "cache"), "OMP_NUM_THREADS": "1"}
        self.ran = {}  # preset -> run directory
        self.commands = set()  # made_by commands with arguments, run

    def tune(self, *args, check=True):
        p = subprocess.run([tune_bin(), *map(str, args)], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                           timeout=600)
        if check and p.returncode != 0:
            raise AssertionError(f"tune {' '.join(map(str, args))} exited {p.returncode}\n{p.stderr[-3000:]}")
        return p

    def run_command(self, command):
        """A made_by command, `tune <kind> --config configs/<kind>/<preset>.yaml [args]`, a few steps of it."""
        if command in self.commands:
            return
        words = shlex.split(command)
        assert words[0] == "tune" and "--config" in words, command
        i = words.index("--config")
        preset = ROOT / words[i + 1]
        assert preset in PRESETS, f"made_by names {preset}, which is not a tiny preset"
        if len(words) == 4:  # the preset as it is
            self.run_preset(preset)
            return
        self.run_producers(preset)
        args = words[1:i + 1] + [preset] + words[i + 2:]
        if "--max-steps" in args:
            j = args.index("--max-steps")
            del args[j:j + 2]
        self.tune(*args, *fast_overrides(load(preset)))
        self.commands.add(command)

    def run_producers(self, preset):
        for command, path in producers(load(preset)):
            self.run_command(command)
            assert (self.cwd / path).exists(), f"{preset}: `{command}` did not write {path}"

    def missing_producer_error(self, preset, *overrides):
        """Runs a chained preset before its producer: returns the error."""
        cfg = load(preset)
        p = self.tune(preset.parent.name, "--config", preset, *fast_overrides(cfg), *overrides, check=False)
        assert p.returncode == 2, p.stderr
        return p.stderr.strip().splitlines()[-1]

    def run_preset(self, preset):
        if preset in self.ran:
            return self.ran[preset]
        cfg = load(preset)
        self.run_producers(preset)
        self.tune(preset.parent.name, "--config", preset, *fast_overrides(cfg))
        self.ran[preset] = self.cwd / cfg["output_dir"]
        return self.ran[preset]


def producers(cfg):
    """(made_by command, the path it writes) of the model and of reward-model terms."""
    out = []
    model = cfg.get("model") or {}
    if model.get("made_by"):
        out.append((model["made_by"], model["path"]))
    for term in (cfg.get("reward") or {}).get("terms") or []:
        if term.get("made_by"):
            out.append((term["made_by"], term["path"]))
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    w = Workdir(tmp_path_factory.mktemp("presets"))
    # Chained presets first, while nothing has run: each must say what to run first.
    w.errors = {p: w.missing_producer_error(p) for p in PRESETS if producers(load(p))}
    for preset in PRESETS:
        w.run_preset(preset)
    return w


def test_presets_are_found():
    names = {f"{p.parent.name}/{p.name}" for p in PRESETS}
    assert {"sft/tiny.yaml", "sft/tiny-lora.yaml", "rm/tiny.yaml", "dpo/tiny.yaml", "grpo/tiny.yaml", "ppo/tiny.yaml"} <= names


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_preset_runs_as_it_is(workdir, preset):
    run = workdir.ran[preset]
    assert (run / "final").is_dir()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(m["step"] for m in metrics) == 2
    cfg = load(preset)
    # The manifest names the sources as the config did, with what they resolved to.
    manifest = json.loads((run / "manifest.json").read_text())
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["path"] == cfg["model"]["path"]
    if cfg["model"]["path"].startswith("builtin:"):
        roles = {f["role"] for f in manifest["files"] if f.get("source") == cfg["model"]["path"]}
        assert roles >= {"tokenizer", "model_config", "model_weights"}
        weights = next(f for f in manifest["files"] if f["role"] == "model_weights")
        assert Path(weights["path"]).is_relative_to(Path(workdir.env["TUNE_CACHE_DIR"]))
    data = [d["path"] for d in cfg["data"]["datasets"]] + ([cfg["data"]["eval_path"]] if cfg["data"].get("eval_path") else [])
    listed = [f.get("source", f.get("path")) for f in manifest["files"] if f["role"] == "data"]
    assert [s for s in listed if s.startswith("synth:")] == [d for d in data if d.startswith("synth:")]


def test_chained_presets_name_the_command_to_run_first(workdir):
    assert len(workdir.errors) >= 4  # sft/tiny-lora, dpo, grpo and ppo start from other runs' outputs
    for preset, error in workdir.errors.items():
        command, path = producers(load(preset))[0]  # the model is looked for first
        assert f"{path} does not exist: run `{command}` first" in error, (preset, error)


def test_a_missing_reward_model_names_the_command_that_makes_it(tmp_path):
    """configs/ppo/tiny.yaml with a model that exists: the reward model's made_by is named."""
    preset = ROOT / "configs/ppo/tiny.yaml"
    term = next(t for t in load(preset)["reward"]["terms"] if t.get("made_by"))
    w = Workdir(tmp_path)
    error = w.missing_producer_error(preset, "model.path=builtin:tiny")
    assert f"{term['path']} does not exist: run `{term['made_by']}` first" in error, error


def synth_file(w, source, files):
    """`tune data synth` with the arguments of a synth: source, its exclusion made first the same way."""
    if source in files:
        return files[source]
    task, _, query = source[len("synth:"):].partition("?")
    args = ["data", "synth", "--task", task]
    exclude = None
    if "&exclude=" in f"&{query}":
        query, _, exclude = f"&{query}".partition("&exclude=")
        query = query[1:]
    for part in filter(None, query.split("&")):
        key, value = part.split("=")
        args += [f"--{key}", value]
    if exclude:
        args += ["--exclude", synth_file(w, exclude, files)]
    out = w.cwd / f"synth-{len(files)}.jsonl"
    w.tune(*args, "--out", out)
    files[source] = out
    return out


def test_synth_sources_are_byte_identical_to_data_synth(workdir):
    files, checked = {}, 0
    for run in workdir.ran.values():
        for f in json.loads((run / "manifest.json").read_text())["files"]:
            if f["role"] == "data" and f.get("source", "").startswith("synth:"):
                data = synth_file(workdir, f["source"], files).read_bytes()
                assert (len(data), sha256(data)) == (f["bytes"], f["sha256"]), f["source"]
                checked += 1
    assert checked >= 6  # sft (train, test), lora (train, test), rm (train, test), dpo (train)


def test_builtin_tiny_is_init_model_seed_0(workdir):
    workdir.tune("init-model", "--preset", "tiny", "--seed", "0", "--out", "init-model-tiny")
    made = workdir.cwd / "init-model-tiny"
    sft = next(run for preset, run in workdir.ran.items() if load(preset)["model"]["path"] == "builtin:tiny")
    manifest = json.loads((sft / "manifest.json").read_text())
    by_name = {Path(f["path"]).name: f for f in manifest["files"] if f.get("source") == "builtin:tiny"}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"} <= set(by_name)
    for name, f in by_name.items():
        assert sha256((made / name).read_bytes()) == f["sha256"], name
    cached = Path(by_name["config.json"]["path"]).parent
    assert sorted(p.name for p in cached.iterdir()) == sorted(p.name for p in made.iterdir())
