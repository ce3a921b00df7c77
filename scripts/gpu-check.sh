#!/bin/bash
# One call on a lent GPU machine (see docs/kernels.md for the exact `run` call): unpack the carried
# Debian packages, build with CUDA (sm_90), run the CUDA kernel tests and benchmark first (so their
# results come back even if the full build fails), then build everything, run the whole ctest suite,
# and time LibTorch's log_softmax + gather as the baseline of the fused kernel.
#
# Writes under $OUT (at most 8 files come back): env.txt, build.log, kernel_tests.log,
# kernel_bench.json, torch_baseline.json, ctest.log, summary.json. Budget: ~9 minutes; each stage
# has its own timeout and is skipped when too little time is left.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$(date +%s)
budget=${TUNE_GPU_BUDGET_S:-530}
build=${TUNE_GPU_BUILD_DIR:-build-gpu}
declare -A status seconds
order=()

left() { echo $((budget - ($(date +%s) - start))); }
# stage NAME LOG TIMEOUT_S CMD...: runs CMD (bash -c), appends to LOG, records rc and seconds.
stage() {
  local name=$1 log=$2 limit=$3
  shift 3
  order+=("$name")
  local remaining
  remaining=$(left)
  if ((remaining < 20)); then
    status[$name]=skipped_no_time
    echo "== $name: skipped (${remaining}s left)" | tee -a "$log"
    return 1
  fi
  ((limit > remaining - 10)) && limit=$((remaining - 10))
  echo "== $name (limit ${limit}s): $*" >>"$log"
  local t0=$(date +%s)
  timeout "$limit" bash -c "$*" >>"$log" 2>&1
  local rc=$?
  seconds[$name]=$(($(date +%s) - t0))
  status[$name]=$rc
  echo "== $name: rc=$rc in ${seconds[$name]}s" | tee -a "$log"
  return $rc
}

# ---- environment --------------------------------------------------------------------------------
{
  date -u +%FT%TZ
  cat /etc/os-release 2>/dev/null | head -3
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  (command -v nvcc || echo /usr/local/cuda/bin/nvcc) | xargs -I{} {} --version 2>&1 | tail -2
  cmake --version | head -1
  git log --oneline -1
} >"$OUT/env.txt" 2>&1
if [[ -f .deps/unpack.sh ]]; then
  # shellcheck disable=SC1091
  source .deps/unpack.sh >>"$OUT/env.txt" 2>&1
else
  echo "no .deps/unpack.sh: carry .deps (bash ../shared/gpu/pack-deps.sh pkgconf pkgconf-bin libpkgconf3 libgloo-dev)" >>"$OUT/env.txt"
fi
export PATH=/usr/local/cuda/bin:$PATH
if [[ -n "${TUNE_DEPS:-}" ]]; then
  # The carried .pc files say prefix=/usr: the sysroot moves their -I/-L under the unpack prefix.
  export PKG_CONFIG_LIBDIR="$TUNE_DEPS/usr/lib/x86_64-linux-gnu/pkgconfig:$TUNE_DEPS/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$TUNE_DEPS"
  command -v pkg-config >/dev/null || export PATH="$PATH:$TUNE_DEPS/usr/bin"
fi
echo "pkg-config: $(command -v pkg-config || echo missing)" >>"$OUT/env.txt"
python3 -c 'import importlib.util as u; print("python modules:", {m: bool(u.find_spec(m)) for m in ("torch", "pytest", "transformers", "peft", "safetensors", "tokenizers")})' >>"$OUT/env.txt" 2>&1
jobs=$(nproc)

# ---- build the kernels and their test first ---------------------------------------------------
stage configure "$OUT/build.log" 120 \
  "cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
stage build_kernels "$OUT/build.log" 150 "cmake --build $build -j$jobs --target tune_kernel_tests"
kernel_bin=$build/bin/tune_kernel_tests
stage kernel_tests "$OUT/kernel_tests.log" 90 "$kernel_bin"
stage kernel_bench "$OUT/kernel_tests.log" 90 "$kernel_bin --bench $OUT/kernel_bench.json --rows 16384 --vocab 151936 --repeats 10"

# ---- LibTorch baseline of the same benchmark (log_softmax + gather), from PyTorch on this machine
stage torch_baseline "$OUT/kernel_tests.log" 90 "python3 - '$OUT/torch_baseline.json' <<'PY'
import json, sys, torch
N, V, R = 16384, 151936, 10
dev = torch.device('cuda')
res = {'device': torch.cuda.get_device_name(0), 'torch': torch.__version__, 'rows': N, 'vocab': V, 'results': []}
g = torch.Generator(device=dev).manual_seed(0)
labels = torch.randint(0, V, (N,), device=dev, generator=g)
labels[9::10] = -100
for dtype in (torch.bfloat16, torch.float32):
    x = (torch.rand(N, V, device=dev, generator=g, dtype=torch.float32) - 0.5).mul_(12).to(dtype)
    def run():
        lp = torch.log_softmax(x, -1, dtype=torch.float32)
        out = lp.gather(1, labels.clamp(min=0).unsqueeze(1)).squeeze(1)
        return out.masked_fill(labels == -100, 0.0)
    for _ in range(2):
        run()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(R):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); run(); b.record(); b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    med = (times[R // 2 - 1] + times[R // 2]) / 2
    extra = torch.cuda.max_memory_allocated() - base
    res['results'].append({'dtype': str(dtype).replace('torch.', ''), 'torch_forward_ms': med, 'torch_extra_bytes': extra})
    print(f'torch {dtype}: log_softmax+gather {med:.3f} ms, extra memory {extra / 2**20:.1f} MiB')
    del x
    torch.cuda.empty_cache()
json.dump(res, open(sys.argv[1], 'w'), indent=2)
PY"

# ---- everything else ----------------------------------------------------------------------------
stage build_all "$OUT/build.log" 330 "cmake --build $build -j$jobs"
stage ctest "$OUT/ctest.log" 240 "cd $build && ctest --output-on-failure -j$((jobs / 2)) --timeout 150"

# ---- summary ------------------------------------------------------------------------------------
python3 - "$OUT" "$(($(date +%s) - start))" "$(declare -p status seconds)" "${order[*]}" <<'PY'
import json, os, re, sys
out, total, decl, order = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split()
def parse(name):
    m = re.search(r'declare -A ' + name + r'=\((.*?)\)', decl, re.S)
    return dict(re.findall(r'\[(\w+)\]="?([^" ]*)"?', m.group(1))) if m else {}
status, seconds = parse('status'), parse('seconds')
summary = {'total_s': total, 'stages': {k: {'rc': status.get(k), 's': seconds.get(k)} for k in order}}
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
kb, tb = load('kernel_bench.json'), load('torch_baseline.json')
if kb and tb:
    torch_by = {r['dtype']: r for r in tb['results']}
    cmp = []
    for r in kb['results']:
        t = torch_by.get({'f32': 'float32', 'bf16': 'bfloat16'}.get(r['dtype'], r['dtype']))
        if t:
            cmp.append({'dtype': r['dtype'], 'fused_ms': r['fused_forward_ms'], 'torch_ms': t['torch_forward_ms'],
                        'speedup_vs_torch': t['torch_forward_ms'] / r['fused_forward_ms'],
                        'fused_extra_bytes': r['fused_extra_bytes'], 'torch_extra_bytes': t['torch_extra_bytes'],
                        'memory_ratio': r['fused_extra_bytes'] / max(t['torch_extra_bytes'], 1)})
    summary['fused_vs_torch'] = cmp
ct = os.path.join(out, 'ctest.log')
if os.path.exists(ct):
    m = re.search(r'(\d+)% tests passed, (\d+) tests failed out of (\d+)', open(ct, errors='replace').read())
    if m:
        summary['ctest'] = {'failed': int(m.group(2)), 'total': int(m.group(3))}
json.dump(summary, open(os.path.join(out, 'summary.json'), 'w'), indent=2)
print(f"{'stage':16} {'rc':>8} {'s':>5}")
for k, v in summary['stages'].items():
    print(f"{k:16} {v['rc']:>8} {v['s'] or '-':>5}")
for c in summary.get('fused_vs_torch', []):
    print(f"{c['dtype']}: fused {c['fused_ms']:.3f} ms vs torch {c['torch_ms']:.3f} ms = {c['speedup_vs_torch']:.2f}x; "
          f"extra memory {c['fused_extra_bytes'] / 2**20:.2f} MiB vs {c['torch_extra_bytes'] / 2**20:.0f} MiB")
if 'ctest' in summary:
    print(f"ctest: {summary['ctest']['failed']} failed of {summary['ctest']['total']}")
PY
tail -n 30 "$OUT/ctest.log" 2>/dev/null | grep -E "tests passed|Failed|\*\*\*" | head -20
