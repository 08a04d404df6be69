#!/usr/bin/env bash
# Issue 14's GPU figures in one prepared run, sized for a lent device's short session (four steps of at most
# 240 s each; not yet run on a GPU, no device was lent): training tokens/s, MFU and peak memory against HF Trainer + PEFT at its best flags; sampling
# throughput per LoRA adapter against plain `model.generate`; the peak memory per phase of a LoRA ladder
# (`run_info.json`); the base model and four LoRA variants scored and sampled one after the other against together
# in mixed-adapter batches (`eval.mixed_adapters`, whose `auto` turns them on for GPUs). Random-init models of real shapes (`tiny:llama-1b`): real weights do not travel to the device.
#
#   bash benchmarks/device_check.sh                      # on the device: MODEL=tiny:llama-1b DEVICE=cuda
#   QUICK=1 DEVICE=cpu MODEL=tiny:llama bash benchmarks/device_check.sh   # a dry run of the script itself
#
# Each step has its own time limit and its log under $OUT (default ./device-out); a failed step does not stop the
# others. The summary (summary.txt) lists every step's exit status and the lines with the figures.
set -u
OUT=${OUT:-./device-out}
MODEL=${MODEL:-tiny:llama-1b}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python}
QUICK=${QUICK:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
if [ "$QUICK" = 1 ]; then STEPS=2; REPEATS=1; PROMPTS=5; PAIRS=10; LIMIT=120; else STEPS=10; REPEATS=2; PROMPTS=40; PAIRS=300; LIMIT=240; fi

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, record its status
  local name=$1 secs=$2; shift 2
  local t0=$(date +%s)
  timeout "$secs" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc after $(( $(date +%s) - t0 )) s" >> "$OUT/summary.txt"
}

: > "$OUT/summary.txt"
{ date -u; command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } > "$OUT/env.txt" 2>&1

step train "$LIMIT" $PY "$HERE/bench_train_vs_hf.py" --model "$MODEL" --device "$DEVICE" --steps "$STEPS" \
  --repeats "$REPEATS" --runners hf-best lorafair
step sample "$LIMIT" $PY "$HERE/bench_sampling_vs_hf.py" --model "$MODEL" --device "$DEVICE" --lora-rank 16 \
  --prompts "$PROMPTS"
step ladder "$LIMIT" $PY -m lorafair run "$HERE/mem_lora_ladder_1b.yaml" --out "$OUT/ladder" --quiet \
  --set "model.source=$MODEL" --set "model.device=$DEVICE"
step mixed "$LIMIT" $PY "$HERE/bench_mixed_adapters.py" --model "$MODEL" --device "$DEVICE" --ranks 16 16 16 16 \
  --pairs "$PAIRS" --prompts "$PROMPTS" --precision bf16 --repeats "$REPEATS"
if [ -f "$OUT/ladder/run_info.json" ]; then
  $PY -c "import json, sys; print(json.dumps(json.load(open(sys.argv[1]))['phases'], indent=1))" \
    "$OUT/ladder/run_info.json" > "$OUT/ladder_phases.json"
fi
{ echo; grep -h -i -E "tokens/s|MFU|peak|ratio|sequences/s|x$" "$OUT"/train.log "$OUT"/sample.log "$OUT"/mixed.log 2>/dev/null | head -60; } \
  >> "$OUT/summary.txt"
cat "$OUT/summary.txt"
