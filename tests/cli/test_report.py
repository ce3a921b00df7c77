"""Seeing a run (issue 16) on real tiny runs made as a user makes them (the commands in the headers of
configs/sft/tiny.yaml and configs/dpo/tiny.yaml, fewer steps):
  - `tune report` renders sft and dpo runs into one self-contained page; headless Chromium (Debian's
    `chromium`) screenshots it and the picture is not blank; the SVG holds each metric's series with
    the values of metrics.jsonl; the page and the .svg files reference nothing external;
  - `log.tensorboard: true` event files read by TensorBoard's own reader (the `tensorboard` package)
    give the same scalars as metrics.jsonl;
  - `tune doctor` names the collapse of a pure-DPO run of the docs/dpo.md ablation (nll_alpha 0,
    rerun here briefly: 150 steps at the preset's lr held constant; docs/dpo.md measured
    chosen_collapse at step 80 of the 800-step run) and says a healthy SFT run is healthy; it flags
    config smells before a run.
Chromium and tensorboard are test-only dependencies installed by scripts/setup.sh."""
import html
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from conftest import ROOT, read_jsonl, run_tune, tune_bin

sys.path.insert(0, str(ROOT / "tests" / "proof"))
import proof_commands  # noqa: E402  (the cached short SFT run the DPO proofs start from)


def tune(*args, cwd):
    return run_tune(*args, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "2", "TUNE_CACHE_DIR": str(Path(cwd) / "cache")})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """runs/sft-tiny-short (the cached 300-step SFT start), runs/sft-tb (a short SFT with TensorBoard
    events), runs/dpo-nll (the DPO preset, shortened) and runs/dpo-pure (nll_alpha 0: the collapse)."""
    tune_bin()  # skips cleanly (conftest) when the binary is not built
    work = tmp_path_factory.mktemp("report")
    proof_commands.TUNE = tune_bin()
    proof_commands.make_short_sft_model(work)
    sft = ROOT / "configs/sft/tiny.yaml"
    dpo = ROOT / "configs/dpo/tiny.yaml"
    tune("sft", "--config", sft, "--max-steps", 30, "-o", "runs/sft-tb", "eval.every=10", "eval.max_samples=40",
         "train.log_every=5", "log.tensorboard=true", cwd=work)
    start = "model.path=runs/sft-tiny-short/final"  # the DPO proof's start, as in docs/dpo.md's ablation
    tune("dpo", "--config", dpo, start, "--max-steps", 100, "-o", "runs/dpo-nll", "train.log_every=5", "eval.every=50",
         "log.tensorboard=true", cwd=work)
    tune("dpo", "--config", dpo, start, "--max-steps", 150, "-o", "runs/dpo-pure", "dpo.nll_alpha=0",
         "optim.schedule=constant", "train.log_every=1", "eval.every=50", cwd=work)
    return work


def metric_series(run_dir, key):
    """(steps, values) of `key` in metrics.jsonl, from step records (eval_* keys: evaluation records)."""
    steps, values = [], []
    for rec in read_jsonl(Path(run_dir) / "metrics.jsonl"):
        if "symptom" in rec:
            continue
        is_eval = any(k.startswith("eval_") for k in rec)
        if key.startswith("eval_") != is_eval or not isinstance(rec.get(key), (int, float)) or isinstance(rec.get(key), bool):
            continue
        steps.append(rec["step"])
        values.append(float(rec[key]))
    return steps, values


def series_in_svg(svg, run, key):
    """The data of the raw polyline of (run, key): steps, values and its drawn point count."""
    m = re.search(r'<g class="series" data-run="%s" data-key="%s" data-points="(\d+)">\s*<polyline class="raw"[^>]*'
                  r'points="([^"]*)" data-steps="([^"]*)" data-values="([^"]*)"' % (re.escape(run), re.escape(html.escape(key))),
                  svg)
    assert m, f"no series {run}: {key}"
    points = m.group(2).split()
    steps = [int(float(s)) for s in m.group(3).split()]
    values = [float(v) for v in m.group(4).split()]
    assert int(m.group(1)) == len(points) == len(steps) == len(values)
    return steps, values


@pytest.fixture(scope="module")
def report(runs):
    out = runs / "report" / "report.html"
    p = tune("report", "runs/sft-tb", "runs/dpo-nll", "runs/dpo-pure", "--out", out, cwd=runs)
    written = [Path(line) for line in p.stdout.split()]
    assert written[0] == out and out.exists()
    return out, written[1:]


def test_report_holds_every_series_with_the_metrics_values(runs, report):
    out, svgs = report
    page = out.read_text()
    names = {s.name for s in svgs}
    for chart in ["loss", "lr", "grad_norm", "exact_match", "margins", "accuracies", "logps"]:
        assert f"report-{chart}.svg" in names, chart
        assert f'data-chart="{chart}"' in page, chart
    for run, key, chart in [("sft-tb", "loss", "loss"), ("sft-tb", "eval_loss", "loss"),
                            ("sft-tb", "eval_exact_match", "exact_match"), ("dpo-pure", "loss", "loss"),
                            ("dpo-nll", "rewards/margins", "margins"), ("dpo-pure", "logps/chosen", "logps")]:
        svg = (out.parent / f"report-{chart}.svg").read_text()
        steps, values = series_in_svg(svg, run, key)
        want_steps, want_values = metric_series(runs / "runs" / run, key)
        assert steps == want_steps, (run, key)
        assert len(values) == len(want_values) > 0
        for a, b in zip(values, want_values):
            assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (run, key, a, b)
        assert steps == series_in_svg(page, run, key)[0]  # the inline chart is the same
    # The collapse is marked on the charts at the watcher's step, and listed with its remedy.
    logged = [r for r in read_jsonl(runs / "runs/dpo-pure/metrics.jsonl") if r.get("symptom") == "chosen_collapse"]
    assert logged, "the pure-DPO run did not collapse (docs/dpo.md ablation)"
    assert f'data-step="{logged[0]["step"]}" data-label="dpo-pure: chosen_collapse"' in page
    assert 'data-id="chosen_collapse"' in page
    # Sample completions of both trainers, checkpoints and the best one, the configurations side by side.
    assert page.count('<tr class="sample">') >= 2
    assert "chosen: " in page and "reference: " in page
    assert '<tr class="best">' in page
    assert '<tr class="diff"><td>dpo.nll_alpha</td>' in page


def test_page_and_charts_reference_nothing_external(report):
    out, svgs = report
    page = out.read_text()
    for banned in ["http:", "https:", "ftp:", "src=", "href", "<script", "<link", "<img", "<iframe", "<object",
                   "<embed", "url(", "@import", "@font-face"]:
        assert banned not in page, banned
    for svg in svgs:
        text = svg.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace name, not fetched
        for banned in ["http:", "https:", "href", "<script", "<image", "url(", "@import"]:
            assert banned not in text, (svg.name, banned)


def png_pixels(path):
    """Decodes an 8-bit RGB / RGBA PNG (what Chromium writes) into rows of (r, g, b) tuples."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * channels:x * channels + 3]) for x in range(width)])
        prev = line
    return rows


def chromium():
    for name in ["chromium", "chromium-browser", "google-chrome"]:
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("headless Chromium not found: scripts/setup.sh installs Debian's chromium package (test only)")


def test_headless_chromium_renders_the_report(report, tmp_path):
    out, _ = report
    shot = tmp_path / "report.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400", f"--screenshot={shot}",
                    out.as_uri()], check=True, capture_output=True, timeout=180)
    rows = png_pixels(shot)
    pixels = [p for row in rows[::2] for p in row[::2]]
    not_white = sum(1 for p in pixels if min(p) < 235)
    assert not_white > 0.01 * len(pixels), "the screenshot is blank"
    assert len(set(pixels)) > 50, "the screenshot has almost no colours: no charts drawn"
    # The lines themselves: pixels of the first run's colour (#1f77b4) and of the second's (#ff7f0e).
    near = lambda p, c: all(abs(x - y) <= 40 for x, y in zip(p, c))
    assert sum(1 for p in pixels if near(p, (31, 119, 180))) > 50
    assert sum(1 for p in pixels if near(p, (255, 127, 14))) > 50


def test_tensorboard_reads_the_same_scalars_as_metrics(runs):
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        pytest.fail("the tensorboard package is missing: scripts/setup.sh installs it into .venv (test only)")
    for run in ["sft-tb", "dpo-nll"]:
        run_dir = runs / "runs" / run
        assert list(run_dir.glob("events.out.tfevents.*")), run
        acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        acc.Reload()
        want = {}
        for rec in read_jsonl(run_dir / "metrics.jsonl"):
            if "symptom" in rec:
                continue
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    want.setdefault(k, []).append((rec["step"], float(v)))
        assert set(acc.Tags()["scalars"]) == set(want), run
        for tag, points in want.items():
            got = [(e.step, e.value) for e in acc.Scalars(tag)]
            assert [s for s, _ in got] == [s for s, _ in points], (run, tag)
            for (_, a), (_, b) in zip(got, points):  # simple_value is a float32
                assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-30) or a == struct.unpack("f", struct.pack("f", b))[0], (run, tag, a, b)


def test_eval_completions_are_written(runs):
    sft = [s for s in read_jsonl(runs / "runs/sft-tb/samples.jsonl") if s["kind"] == "eval"]
    assert {s["step"] for s in sft} == {0, 10, 20, 30}  # the preset also evaluates at the start
    assert all(s["prompt"] and "reference" in s and isinstance(s["correct"], bool) for s in sft)
    assert len([s for s in sft if s["step"] == 30]) == 4  # eval.samples
    dpo = [s for s in read_jsonl(runs / "runs/dpo-nll/samples.jsonl") if s["kind"] == "eval"]
    assert {s["step"] for s in dpo} == {50, 100}
    assert all(s["chosen"] and s["rejected"] and "completion" in s for s in dpo)


def test_doctor_names_the_pure_dpo_collapse(runs):
    out = tune("doctor", "runs/dpo-pure", cwd=runs).stdout
    assert "symptom chosen_collapse at step" in out, out
    assert "likely cause: beta too low or lr too high" in out
    assert "remedy: " in out and "dpo.nll_alpha" in out
    assert "verdict: healthy" not in out


def test_doctor_says_a_healthy_run_is_healthy(runs):
    out = tune("doctor", "runs/sft-tiny-short", cwd=runs).stdout
    assert "verdict: healthy" in out, out
    assert re.search(r"^symptom ", out, re.M) is None, out


def test_doctor_flags_config_smells_before_a_run(runs):
    bad = runs / "bad-dpo.yaml"
    text = (ROOT / "configs/dpo/tiny.yaml").read_text().replace("beta: 0.1", "beta: 0.001").replace("eval_fraction: 0.05",
                                                                                                     "eval_fraction: 0.0")
    bad.write_text(text)
    out = tune("doctor", "--config", bad, cwd=runs).stdout
    assert "config dpo_beta (warning)" in out and "config no_eval (warning)" in out, out
    out = tune("doctor", "--config", ROOT / "configs/grpo/tiny.yaml", "optim.lr=0.003", cwd=runs).stdout
    assert "config rl_lr (warning)" in out, out  # 3e-3 is the lr of the SFT run that made runs/sft-tiny-short/final
    out = tune("doctor", "--config", ROOT / "configs/sft/tiny.yaml", cwd=runs).stdout
    assert "verdict: healthy" in out, out
    rules = tune("doctor", "--rules", cwd=runs).stdout
    assert "chosen_collapse [dpo]" in rules and "kl_explosion [grpo, ppo]" in rules
