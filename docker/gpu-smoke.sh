#!/usr/bin/env bash
# GPU smoke test for rs-ssl: CUDA is visible, a short `rs-ssl pretrain` on the embedded Sentinel-2
# sample runs on the GPU and writes its outputs, and one `rs-ssl bench` reports images/s.
# Exits 0 when all pass, 1 with a "gpu-smoke: FAIL:" line on the first failure.
#
#   in the image:   docker run --rm --gpus all --entrypoint rs-ssl-gpu-smoke rs-ssl:gpu
#   in a checkout:  bash docker/gpu-smoke.sh          (with rs-ssl installed, e.g. `make venv`)
#
# Environment (all optional):
#   RS_SSL_BIN      the rs-ssl command                        (default: rs-ssl, else .venv/bin/rs-ssl)
#   RS_SSL_PYTHON   the interpreter rs-ssl runs under         (default: read from rs-ssl's #! line)
#   SMOKE_OUT       keep the outputs in this folder           (default: a temporary folder, removed on success)
#   SMOKE_TIMEOUT   seconds allowed for each rs-ssl command   (default: 900)
set -euo pipefail

fail() {
    echo "gpu-smoke: FAIL: $*" >&2
    exit 1
}
say() { echo "gpu-smoke: $*"; }

# --- the rs-ssl command and its interpreter ---------------------------------------------------
rs_ssl="${RS_SSL_BIN:-}"
if [[ -z "$rs_ssl" ]]; then
    if command -v rs-ssl >/dev/null 2>&1; then
        rs_ssl="rs-ssl"
    elif [[ -x "$(dirname "$0")/../.venv/bin/rs-ssl" ]]; then
        rs_ssl="$(dirname "$0")/../.venv/bin/rs-ssl"
    else
        fail "rs-ssl not found on PATH nor in .venv/; install it (\`make venv\` or \`pip install .\`) or set RS_SSL_BIN"
    fi
fi
rs_ssl_path="$(command -v "$rs_ssl")" || fail "RS_SSL_BIN=$rs_ssl is not an executable command"

python="${RS_SSL_PYTHON:-}"
if [[ -z "$python" ]]; then
    shebang="$(head -n 1 "$rs_ssl_path")"
    candidate="${shebang#\#!}"
    if [[ "$shebang" == "#!"* && "$candidate" != *" "* && -x "$candidate" ]]; then
        python="$candidate"
    else
        python="$(command -v python3 || command -v python || true)"
        [[ -n "$python" ]] || fail "no python found; set RS_SSL_PYTHON to the interpreter rs-ssl is installed in"
    fi
fi

limit="${SMOKE_TIMEOUT:-900}"
[[ "$limit" =~ ^[0-9]+$ ]] || fail "SMOKE_TIMEOUT=$limit is not a number of seconds"
run_limited() {
    if command -v timeout >/dev/null 2>&1; then
        timeout "$limit" "$@"
    else
        "$@"
    fi
}

# --- 1. CUDA is visible to torch ---------------------------------------------------------------
say "checking CUDA with $python"
cuda_check='
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) sees no CUDA device")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s), "
      f"device 0: {torch.cuda.get_device_name(0)}")
'
if ! cuda_info="$("$python" -c "$cuda_check" 2>&1)"; then
    fail "CUDA is not available: ${cuda_info##*$'\n'}. Run on a GPU machine; in Docker pass --gpus all (NVIDIA container toolkit, driver >= 580 for CUDA 13)"
fi
say "$cuda_info"

# --- working folder ----------------------------------------------------------------------------
if [[ -n "${SMOKE_OUT:-}" ]]; then
    work="$SMOKE_OUT"
    mkdir -p "$work" || fail "cannot create SMOKE_OUT=$work"
    keep=1
else
    work="$(mktemp -d "${TMPDIR:-/tmp}/rs-ssl-gpu-smoke.XXXXXX")" || fail "cannot create a temporary folder under ${TMPDIR:-/tmp}"
    keep=0
fi
cleanup() {
    local rc=$?
    if [[ $rc -eq 0 && $keep -eq 0 ]]; then
        rm -rf "$work"
    else
        echo "gpu-smoke: outputs and logs kept in $work" >&2
    fi
}
trap cleanup EXIT

# --- 2. short pretraining on the embedded sample, on the GPU -----------------------------------
run="$work/smoke"
say "rs-ssl pretrain --bands 13 --devices 1 --max-steps 20 --out $run"
if ! run_limited "$rs_ssl" pretrain --bands 13 --devices 1 --max-steps 20 --out "$run" >"$work/pretrain.log" 2>&1; then
    tail -n 20 "$work/pretrain.log" >&2 || true
    fail "rs-ssl pretrain failed (log: $work/pretrain.log)"
fi
# Lightning logs "GPU available: True (cuda), used: False" when the run fell back to the CPU.
if grep -q "GPU available: True.*used: False" "$work/pretrain.log"; then
    fail "rs-ssl pretrain ran on the CPU although a GPU is visible (log: $work/pretrain.log)"
fi
for f in checkpoints/last.ckpt backbone.safetensors metrics.json config.yaml loss.png; do
    [[ -s "$run/$f" ]] || fail "rs-ssl pretrain did not write $run/$f (log: $work/pretrain.log)"
done
say "pretrain wrote checkpoints/last.ckpt, backbone.safetensors, metrics.json, config.yaml, loss.png"

# --- 3. one bench measurement on the GPU -------------------------------------------------------
say "rs-ssl bench --steps 5 --device cuda"
if ! run_limited "$rs_ssl" bench --steps 5 --device cuda >"$work/bench.json" 2>"$work/bench.log"; then
    tail -n 20 "$work/bench.log" >&2 || true
    fail "rs-ssl bench failed (log: $work/bench.log)"
fi
bench_check='
import json, math, sys
rows = []
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.strip()
    if line.startswith("{"):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
rows = [r for r in rows if isinstance(r, dict) and "img_per_s" in r]
if not rows:
    sys.exit(f"no JSON line with img_per_s in {sys.argv[1]}")
v = rows[-1]["img_per_s"]
if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
    sys.exit(f"img_per_s is {v!r}, expected a number > 0")
print(f"{v:.1f}")
'
if ! img_per_s="$("$python" -c "$bench_check" "$work/bench.json" 2>&1)"; then
    fail "rs-ssl bench output: ${img_per_s##*$'\n'}"
fi
say "bench: $img_per_s img/s"
say "OK"
