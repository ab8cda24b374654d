#!/usr/bin/env bash
# The fairseq-mgcm recipe: MuST-C (or a corpus we make) -> trained SimulST models per
# gradient-conflict method -> offline BLEU, simultaneous BLEU/latency sweep, table and plot.
#
# Usage:
#   scripts/run.sh --mustc-root /data/MUSTC_v1.0 [--stage N] [--stop-stage M] [options]
#   scripts/run.sh --recipe configs/recipes/demo.sh           # the CPU demo's settings
#
# Stages (a re-run redoes a stage, and the stages after it, only when its flags or the content
# of what it reads changed: see the done markers below):
#   0  make a corpus in MuST-C layout (only when --corpus is builtin or text)
#   1  prepare data: fbank, SentencePiece, CMVN, manifests, SimulEval inputs
#   2  ASR pre-training of the encoder (only when --asr-pretrain true)
#   3  train one model per method in --methods (CPU, one or more GPUs, several nodes); an
#      interrupted or extended training resumes from its checkpoint_last.pt
#   4  average the last --n-average checkpoints   5  offline BLEU on --test-set (fairseq-generate)
#   6  simultaneous evaluation with SimulEval: --policies over --k-list and their own settings
#      (--longform true: whole talks too, wait-k)
#   7  results table, BLEU-AL plot and conflict heat maps; with --seeds, means, spreads and
#      sacrebleu paired significance tests
#
# With --seeds "1 2 3", stages 3-7 run once per seed, each run in $exp_dir/<method>/seed<N>/,
# so the table grows as seeds finish; without it, one run per method in $exp_dir/<method>/.
# With --jobs N (CPU), N runs (a method and seed: stages 3-6) go at once on nproc/N threads
# each, logged in $exp_dir/logs/<id>.log; the table is rewritten as each one finishes.
#
# Training flags, later ones winning: --model-args, --hardware-args, configs/methods/<method>.args
# (stage 2: --asr-args), --overlays, --train-budget, the recipe's own, --extra-train-args; each
# combination is parsed by fairseq-train's parser, and every option checked (recipe/options.py,
# checks.py), before anything is written. A --recipe file (name=value lines) is read in place.
set -euo pipefail

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}
die() { log "ERROR: $*"; exit 1; }

# ---- options: checked in Python; back come the settings, lists (methods_arr, k_arr,
# overlays_arr, seed_list) and the run matrix (run_dir[method,seed], run_name[method,seed]).
cd "$(dirname "$0")/.."
# SIGINT/SIGTERM stop everything the recipe started: it runs in its own process group (supervise.py)
# The project's environment (scripts/setup_env.sh) must be active: say so in one line, not with
# the traceback of the first import that fails in the system Python.
python -c "import omegaconf, yaml" 2>/dev/null || {
  echo "run.sh: the project's Python environment is not active in this shell: run" \
    "'source scripts/setup_env.sh' first (it creates the environment on its first run)" >&2
  exit 2
}
[ -n "${MGCM_RECIPE_SUPERVISED:-}" ] || exec python -m fairseq_mgcm.recipe.supervise bash scripts/run.sh "$@"
settings=$(python -m fairseq_mgcm.recipe.configure "$@") || exit $?
eval "$settings"
# --jobs N: the scheduler runs this script per run (stages 3-6), then stage 7 (see jobs.py).
[ "$jobs" -eq 1 ] || exec python -m fairseq_mgcm.recipe.jobs "$@"

# ---- helpers ---------------------------------------------------------------------------------
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
on_first_node() { [ "$node_rank" -eq 0 ]; }
skip_on_other_nodes() { log "Stage $1: skipped on node $node_rank (node 0 does it)"; }

# Done markers (fairseq_mgcm/markers.py) record what produced the output: the command line or
# flags, and the key of the content of what the stage read (fairseq_mgcm/recipe/lineage.py:
# input files, data splits, the markers of the stages it reads). A stage is done when its
# marker records the same thing, so changed settings or inputs redo it and what follows it.
is_done() { python -m fairseq_mgcm.markers is-done "$@"; }
mark_done() { python -m fairseq_mgcm.markers mark-done "$1" "$2"; }
inputs_key() { python -m fairseq_mgcm.recipe.lineage key "$@"; }
wait_for() {  # wait_for FILE WHAT: other nodes wait until node 0 has finished a shared stage
  until [ -f "$1" ]; do log "node $node_rank: waiting for node 0 to $2 ($1)"; sleep 30; done
}

# fairseq-train for one model, on CPU (one or more processes), one or more GPUs, or nodes.
fairseq_train() {  # fairseq_mgcm/cli.py: fairseq-train, started without what it never uses
  local save_dir=$1; shift
  local launcher=(python -m fairseq_mgcm.cli train)
  local dist=()
  if [ "$ngpus" -eq 0 ]; then
    dist=(--cpu)
    # fairseq's own launchers assume CUDA; this one starts the ranks itself (gloo).
    [ "$nprocs" -le 1 ] || launcher=(python -m fairseq_mgcm.recipe.cpu_launch --nprocs "$nprocs" -- "${launcher[@]}")
  elif [ "$nnodes" -gt 1 ]; then
    launcher=(torchrun --nproc_per_node "$ngpus" --nnodes "$nnodes" --node_rank "$node_rank"
              --master_addr "$master_addr" --master_port "$master_port" -m fairseq_mgcm.cli train)
    dist=(--distributed-world-size $((ngpus * nnodes)))
  elif [ "$ngpus" -gt 1 ]; then
    dist=(--distributed-world-size "$ngpus")
  fi
  local suffix=""; on_first_node || suffix=".node$node_rank"
  mkdir -p "$save_dir"
  log "command: $(printf '%q ' "${launcher[@]}" "$data_dir" --user-dir fairseq_mgcm "${dist[@]}" "$@")"
  python -m fairseq_mgcm.recipe.run_lock "$save_dir/../.train$suffix.lock" -- python -m \
    fairseq_mgcm.recipe.peak_memory "$save_dir/../train_peak$suffix.json" -- \
    "${launcher[@]}" "$data_dir" --user-dir fairseq_mgcm "${dist[@]}" "$@" 2>&1 \
    | python -m fairseq_mgcm.recipe.console_filter "$save_dir/train$suffix.log"
  return "${PIPESTATUS[0]}"
}

# ---- stage 0: corpus -------------------------------------------------------------------------
corpus_dir=$exp_dir/corpus
mkdir -p "$exp_dir"
if [ "$corpus" != mustc ]; then
  mustc_root=$corpus_dir  # corpus_cmd: scripts/make_corpus.py's command, from configure.py
  corpus_record="${corpus_cmd[*]} | inputs $(inputs_key --files "${corpus_inputs[@]}")"
  if ! run_stage 0; then :
  elif ! on_first_node; then skip_on_other_nodes 0
  elif is_done "$exp_dir/.stage0_corpus.done" "$corpus_record"; then
    log "Stage 0: corpus $corpus_dir is up to date"
  else
    log "Stage 0: make a $corpus corpus in MuST-C layout -> $corpus_dir"
    "${corpus_cmd[@]}"; mark_done "$exp_dir/.stage0_corpus.done" "$corpus_record"
  fi
fi

# ---- stage 1: data preparation ---------------------------------------------------------------
prepare_cmd=(python scripts/prepare_mustc.py --mustc-root "$mustc_root" --out-dir "$data_dir"
             --src-lang "$src_lang" --tgt-lang "$tgt_lang"
             --vocab-size-tgt "$vocab_size_tgt" --vocab-size-src "$vocab_size_src")
[ -z "$specaugment" ] || prepare_cmd+=(--specaugment "$specaugment")
# Always run: prepare_mustc.py keys each step on the content it reads ($data_dir/.done/) and
# redoes only what changed. The marker beside the data folder tells other nodes it is ready.
data_marker=$exp_dir/.stage1_prepare.done
if ! run_stage 1; then :
elif ! on_first_node; then skip_on_other_nodes 1
else
  log "Stage 1: prepare $mustc_root -> $data_dir (each step only when what it reads changed)"
  "${prepare_cmd[@]}"
  mark_done "$data_marker" "${prepare_cmd[*]} | inputs $(inputs_key --data "$data_dir")"
fi

# ---- stage 2: ASR pre-training ---------------------------------------------------------------
# train_model NAME OUT FILE...: train into OUT/checkpoints unless its marker records these flags
# and inputs (the train and dev data, and $upstream: the trainings it starts from; when those
# changed, lineage.py's claim sets the old checkpoints aside: a model of other data must not
# resume). The flags come from the same reader as the check before stage 0 (on CPU without half
# precision); a plain assignment, so a failure to read them stops the recipe here.
train_model() {
  local name=$1 out=$2 words key; shift 2
  local -a flags own=(--config-yaml config.yaml --train-subset train --valid-subset dev
                      --save-dir "$out/checkpoints" --seed "$seed" "${run_flags[@]}")
  words=$(python -m fairseq_mgcm.recipe.train_flags --print $([ "$ngpus" -gt 0 ] || echo --cpu) \
    --budget "$train_budget" --recipe-flags "$(printf '%q ' "${own[@]}")" \
    --extra "$extra_train_args" "$(IFS=,; echo "$model_args,$hardware_args,$*")") \
    || die "Stage $stage_now: cannot read the training flags of $name (exit $?)"
  eval "flags=($words)"
  local marker=$out/.train.done
  on_first_node || wait_for "$data_marker" "prepare the data"
  key=$(python -m fairseq_mgcm.recipe.lineage claim "$out" --data "$data_dir" --splits train dev \
        --upstream "${upstream[@]}") || die "Stage $stage_now: cannot read the inputs of $name"
  if is_done "$marker" "${flags[*]} | inputs $key"; then
    log "Stage $stage_now: $name already trained with these flags and inputs ($out)"
    return 0
  fi
  [ ! -f "$marker" ] || log "Stage $stage_now: $name: flags changed since it was trained; fairseq-train resumes from checkpoint_last.pt"
  log "Stage $stage_now: train $name -> $out"
  fairseq_train "$out/checkpoints" "${flags[@]}"
  if on_first_node; then mark_done "$marker" "${flags[*]} | inputs $key"; fi
}

asr_dir=$exp_dir/asr_pretrain
pretrained_args=() upstream=()
if [ "$asr_pretrain" = true ]; then
  pretrained_args=(--load-pretrained-encoder-from "$asr_dir/checkpoints/checkpoint_best.pt")
  if run_stage 2; then stage_now=2 run_flags=(); train_model "ASR pre-training" "$asr_dir" "$asr_args"; fi
  upstream=("$asr_dir/.train.done")
fi

# ---- stage 3: training -----------------------------------------------------------------------
train_methods() {
  local m dir
  for m in "${methods_arr[@]}"; do
    stage_now=3
    dir=${run_dir[$m,$seed]}
    run_flags=(--conflict-telemetry-jsonl "$dir/conflict.jsonl" "${pretrained_args[@]}")
    train_model "${run_name[$m,$seed]}" "$dir" "configs/methods/$m.args" "${overlays_arr[@]}"
  done
}

# ---- stage 4: checkpoint averaging -----------------------------------------------------------
average_methods() {
  local m dir record
  for m in "${methods_arr[@]}"; do
    dir=${run_dir[$m,$seed]}
    record="$n_average | inputs $(inputs_key --upstream "$dir/.train.done")"
    if is_done "$dir/.average.done" "$record" --inputs "$dir"/checkpoints/checkpoint*.pt; then
      log "Stage 4: $dir/checkpoint_avg.pt is up to date"
      continue
    fi
    log "Stage 4: average the last $n_average checkpoints of ${run_name[$m,$seed]}"
    python scripts/average_checkpoints.py --save-dir "$dir/checkpoints" \
      --num "$n_average" --output "$dir/checkpoint_avg.pt"
    mark_done "$dir/.average.done" "$record"
  done
}

# ---- stage 5: offline BLEU -------------------------------------------------------------------
offline_methods() {
  local m dir out record cpu=()
  [ "$ngpus" -gt 0 ] || cpu=(--cpu)
  for m in "${methods_arr[@]}"; do
    dir=${run_dir[$m,$seed]}
    out=$dir/generate-$test_set.txt
    record="$test_set beam $beam | inputs $(inputs_key --data "$data_dir" --splits "$test_set" \
      --upstream "$dir/.average.done")"
    if is_done "$dir/.offline.done" "$record" --inputs "$dir/checkpoint_avg.pt"; then
      log "Stage 5: offline BLEU of ${run_name[$m,$seed]} is up to date"
      continue
    fi
    log "Stage 5: offline BLEU of ${run_name[$m,$seed]} on $test_set (beam $beam)"
    python -m fairseq_mgcm.cli generate "$data_dir" --user-dir fairseq_mgcm --config-yaml config.yaml \
      --gen-subset "$test_set" --task speech_to_text_multitask \
      --path "$dir/checkpoint_avg.pt" --max-tokens 50000 --beam "$beam" \
      --scoring sacrebleu "${cpu[@]}" > "$out.tmp"
    mv "$out.tmp" "$out"
    tail -n 1 "$out" > "$dir/offline_bleu.txt.tmp"
    mv "$dir/offline_bleu.txt.tmp" "$dir/offline_bleu.txt"
    cat "$dir/offline_bleu.txt"
    mark_done "$dir/.offline.done" "$record"
  done
}

# ---- stage 6: simultaneous evaluation --------------------------------------------------------
sweep_methods() {
  local m dir device
  device=${agent_device:-$([ "$ngpus" -gt 0 ] && echo cuda || echo cpu)}
  local -a sweep_args=(--data-dir "$data_dir" --split "$test_set" --k "${k_arr[@]}" --device "$device")
  [ -n "$eval_max_instances" ] && sweep_args+=(--max-instances "$eval_max_instances")
  [ -n "$segment_size" ] && sweep_args+=(--segment-size "$segment_size")
  for m in "${methods_arr[@]}"; do
    dir=${run_dir[$m,$seed]}
    log "Stage 6: SimulEval sweep of ${run_name[$m,$seed]}: ${policies_arr[*]} (k = ${k_arr[*]})"
    python scripts/simuleval_sweep.py --checkpoint "$dir/checkpoint_avg.pt" "${sweep_args[@]}" \
      --policies "${policies_arr[@]}" --output-dir "$dir/simul"
    [ "$longform" = false ] || python -m fairseq_mgcm.longform.stage \
      --checkpoint "$dir/checkpoint_avg.pt" "${sweep_args[@]}" --output-dir "$dir/longform"
  done
}

# ---- stage 7: results ------------------------------------------------------------------------
# Over every run so far (all seeds): a run that has not finished yet is reported as missing.
report() {
  log "Stage 7: results table, BLEU-AL plot and conflict heat maps"
  python -m fairseq_mgcm.recipe.report_stage --exp-dir "$exp_dir" --methods "${methods_arr[@]}" \
    --test-set "$test_set" ${seeds:+--seeds $seeds}
}

for seed in "${seed_list[@]}"; do
  [ -z "$seeds" ] || log "Seed $seed of ${seed_list[*]}"
  if run_stage 3; then train_methods; fi
  if ! on_first_node; then
    for s in 4 5 6 7; do run_stage "$s" && skip_on_other_nodes "$s"; done
    continue
  fi
  if run_stage 4; then average_methods; fi
  if run_stage 5; then offline_methods; fi
  if run_stage 6; then sweep_methods; fi
  if run_stage 7; then report; fi
done
on_first_node || { log "done: node $node_rank trained; node 0 evaluates"; exit 0; }
log "done: stages $stage..$stop_stage in $exp_dir"
