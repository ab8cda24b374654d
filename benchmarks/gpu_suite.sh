#!/usr/bin/env bash
# The GPU benchmark suite: every figure the issue asks of one GPU, into OUT/suite.json and
# OUT/suite.log (two files, flat: the device tool returns at most 8).
#
# Usage:
#   benchmarks/gpu_suite.sh OUT [--device cuda|cpu] [--tiny]
#     (default --device cuda; --device cpu --tiny is the CPU mode CI runs, under a minute)
#
# Stages (each under `timeout`; a failed stage is recorded and the suite goes on; the exit
# status is 1 if any failed). What each runs per mode, and its limit, is benchmarks/gpu_suite.py.
#   engine      benchmarks/bench_conflict.py: step time and memory above the step's start for
#               none / PCGrad / MGCM (module and parameter, separate and combined), sizes s and
#               l (205.9 M parameters), fp32, AMP and fp16; MGCM's extra as % of PCGrad's
#   syncs       benchmarks/bench_host_syncs.py: host syncs per engine backward (CUDA only)
#   train       benchmarks/bench_paper_config.py: configs/model/s.args + configs/hardware/1gpu.args
#               (--fp16), 200 updates per method on a generated corpus: updates/s, peak memory,
#               the loss falling, no overflow loop
#   throughput  benchmarks/bench_model_throughput.py: utterances/s and peak memory against
#               fairseq's convtransformer_simul_trans wait-k at the same size
#   agent       benchmarks/bench_agent_latency.py: AL_CA - AL and cost per chunk on the device
#
# On the H200 of the device tool (no network; Python 3.12 with torch, numpy, sacrebleu,
# sentencepiece, ... already there), with the wheels of benchmarks/gpu_wheels.sh in .whl/
# (carry .whl; fairseq-fixed travels as its sdist and builds there against that torch, without
# its CUDA extensions, which nothing here uses):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && \
#   env -u CUDA_HOME python3 -m pip install -q --no-index --no-deps --no-build-isolation \
#     --no-cache-dir --upgrade --target /tmp/site .whl/fairseq_fixed-0.12.3.1.tar.gz && \
#   benchmarks/gpu_suite.sh $OUT
set -euo pipefail

usage="usage: benchmarks/gpu_suite.sh OUT [--device cuda|cpu] [--tiny]"
[ $# -ge 1 ] && [ "${1#-}" = "$1" ] || { echo "$usage" >&2; exit 2; }
out=$(realpath -m -- "$1"); shift  # before the cd: OUT is relative to the caller's folder
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
settings=$("$py" benchmarks/gpu_suite.py options "$@") || exit 2
eval "$settings"

mkdir -p "$out"
log_file="$out/suite.log" report="$out/suite.json"
: >"$log_file"
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_suite.XXXXXX")
trap 'rm -rf "$work"' EXIT
log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (gpu_suite.sh) $*" | tee -a "$log_file" >&2; }

tiny_flag=(); [ "$mode" = gpu ] || tiny_flag=(--tiny)
"$py" benchmarks/gpu_suite.py start "$report" --device "$device" "${tiny_flag[@]}" \
  >>"$log_file" 2>&1 || { cat "$log_file" >&2; log "cannot start (above)"; exit 2; }

# stage NAME COMMAND...: run it under the stage's limit, log it, record it in suite.json
stage() {
  local name=$1; shift
  local limit_var="${name}_limit" start=$SECONDS rc=0
  log "Stage $name (limit ${!limit_var} s): $*"
  timeout --kill-after=10 "${!limit_var}" "$@" >>"$log_file" 2>&1 || rc=$?
  "$py" benchmarks/gpu_suite.py add "$report" "$name" "$rc" $((SECONDS - start)) \
    "$work/$name.json" >>"$log_file" 2>&1 || rc=1
  [ "$rc" -eq 0 ] && log "Stage $name: done" || log "Stage $name: FAILED (exit $rc)"
}

export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the scripts import the checkout
stage engine "$py" benchmarks/bench_conflict.py --device "$device" "${engine_args[@]}" \
  --json "$work/engine.json"
stage syncs "$py" benchmarks/bench_host_syncs.py --device "$device" "${syncs_args[@]}" \
  --json "$work/syncs.json"
stage train "$py" benchmarks/bench_paper_config.py "$work/train" --device "$device" \
  "${train_args[@]}" --json "$work/train.json"
stage throughput "$py" benchmarks/bench_model_throughput.py --device "$device" \
  "${throughput_args[@]}" --json "$work/throughput.json"
stage agent "$py" benchmarks/bench_agent_latency.py --device "$device" "${agent_args[@]}" \
  --json "$work/agent.json"

"$py" benchmarks/gpu_suite.py finish "$report" 2>&1 | tee -a "$log_file"
