#!/usr/bin/env bash
# Inference speed of aicoin (candle) beside llama.cpp on the same GGUF, threads, prompt tokens and
# greedy decoding, one stream, run back to back; prints both and the ratios. aicoin runs twice:
# with its default weights ("fast": formats without a fast kernel re-quantized to Q8_0; SmolLM2's
# Q4_1 has ours, so it stays) and on the file as shipped.
#
# Usage: scripts/bench-inference.sh [THREADS]   (default: every core)
# Needs: a release build (cargo build --release -p aicoin), SmolLM2 fetched
# (aicoin model fetch smollm2), and llama-cpp-python built from source in $LLAMA_VENV
# (default target/llama-cpp-venv; created on first run: about 15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
bin=target/release/aicoin
venv=${LLAMA_VENV:-target/llama-cpp-venv}
models=${AICOIN_MODELS_DIR:-$HOME/.local/share/aicoin/models}
gguf=$models/smollm2-135m-instruct/model.gguf
prompt_tokens=${PROMPT_TOKENS:-128}
tokens=${TOKENS:-128}
rounds=${ROUNDS:-5}

[ -x "$bin" ] || cargo build --release -p aicoin
[ -f "$gguf" ] || "$bin" model fetch smollm2 --models-dir "$models"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  python3 -m venv "$venv"
  # From source, for the instruction set aicoin is built for (x86-64-v3: AVX2, FMA, F16C; see
  # .cargo/config.toml). GGML_NATIVE would also pick AMX where the CPU lists it, which crashes
  # in VMs that do not grant the AMX tile state.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DGGML_BMI2=ON -DGGML_AVX512=OFF" "$venv/bin/pip" install --quiet \
    --no-binary llama-cpp-python llama-cpp-python==0.3.36
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for weights in fast as-shipped; do
  RAYON_NUM_THREADS=$threads AICOIN_LOG=warn "$bin" bench inference --model "$gguf" \
    --weights "$weights" --streams 1 --prompt-tokens "$prompt_tokens" --tokens "$tokens" \
    --rounds "$rounds" --json >"$out/aicoin-$weights.json" 2>/dev/null
done
prompt=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["prompt_ids"]))' "$out/aicoin-fast.json")
"$venv/bin/python" scripts/llama_cpp_bench.py "$gguf" "$prompt" "$tokens" "$threads" "$rounds" >"$out/llama.json"

python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
llama = json.loads((out / "llama.json").read_text())
rows = [("llama.cpp, Q4_1 as shipped", llama)]
for w in ("fast", "as-shipped"):
    r = json.loads((out / f"aicoin-{w}.json").read_text())
    s = r["results"][0]
    rows.append((f"aicoin, weights {w}", dict(s, threads=r["threads"])))
first = json.loads((out / "aicoin-fast.json").read_text())
print(f"SmolLM2-135M-Instruct, {llama['threads']} threads, prompt {first['prompt_tokens']} tokens, "
      f"{first['tokens']} greedy tokens (EOS ignored), median of {first['rounds']} rounds")
print(f"{'engine':<30} {'TTFT ms':>8} {'prefill tok/s':>14} {'decode tok/s':>13} {'peak RSS MiB':>13}")
for name, r in rows:
    print(f"{name:<30} {r['ttft_seconds']*1e3:>8.0f} {r['prefill_tokens_per_second']:>14.1f} "
          f"{r['decode_tokens_per_second']:>13.1f} {r['peak_rss_mib']:>13.0f}")
for name, r in rows[1:]:
    print(f"{name} / llama.cpp: prefill {r['prefill_tokens_per_second']/llama['prefill_tokens_per_second']:.2f}x, "
          f"decode {r['decode_tokens_per_second']/llama['decode_tokens_per_second']:.2f}x, "
          f"TTFT {r['ttft_seconds']/llama['ttft_seconds']:.2f}x, "
          f"peak RSS {r['peak_rss_mib']/llama['peak_rss_mib']:.2f}x")
PY
