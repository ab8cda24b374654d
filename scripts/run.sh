#!/usr/bin/env bash
# The fairseq-mgcm recipe: MuST-C (or a corpus we make) -> trained SimulST models per
# gradient-conflict method -> offline BLEU, simultaneous BLEU/latency sweep, table and plot.
#
# Usage:
#   scripts/run.sh --mustc-root /data/MUSTC_v1.0 [--stage N] [--stop-stage M] [options]
#   scripts/run.sh --recipe configs/recipes/demo.sh           # the CPU demo's settings
#
# Stages 0-3 skip work whose .done marker exists (delete the marker to redo it) and stage 6
# skips finished sweep runs; stages 4, 5 and 7 are cheap and always follow the latest checkpoints:
#   0  make a corpus in MuST-C layout (only when --corpus is builtin or text)
#   1  prepare data: fbank, SentencePiece, CMVN, manifests, SimulEval inputs
#   2  ASR pre-training of the encoder (only when --asr-pretrain true)
#   3  train one model per method in --methods (single GPU, DDP, multi-node or CPU)
#   4  average the last --n-average checkpoints
#   5  offline BLEU on --test-set with fairseq-generate
#   6  simultaneous evaluation with SimulEval over --k-list
#   7  results table (markdown), BLEU-AL plot and per-method conflict heat maps (PNG)
#
# Every default below is a --flag (underscores become dashes). A --recipe file is sourced
# first, so flags given after it override it.
set -euo pipefail

# ---- defaults --------------------------------------------------------------------------------
stage=0
stop_stage=100
recipe=""                       # shell file with defaults for the variables below
corpus=mustc                    # mustc | builtin (the grammar corpus) | text (--src/tgt-text)
mustc_root="${MUSTC_ROOT:-}"    # MuST-C v1.0 root (holds en-de/); required for corpus=mustc
src_text=""                     # corpus=text: English side, line-aligned with --tgt-text
tgt_text=""                     # corpus=text: German side
corpus_sizes="2000 100 100"     # corpus=builtin|text: utterances in train dev tst-COMMON
corpus_seed=1
exp_dir=exp/mustc_s             # everything this run writes
data_dir=""                     # prepared data (default: $exp_dir/data)
vocab_size_tgt=8000
vocab_size_src=5000
train_args=configs/train/s_1gpu.args  # model and optimisation flags for fairseq-train
methods="none mgcm pcgrad discard"    # each has configs/methods/<method>.args
asr_pretrain=false
asr_args=configs/train/asr_pretrain.args
ngpus=1                         # GPUs per node; 0 trains on CPU
nnodes=1                        # >1: multi-node through torchrun
node_rank=0
master_addr=localhost
master_port=29500
seed=1
n_average=5
test_set=tst-COMMON
beam=5
k_list="1 3 5 7 9 1000"         # wait-k values for the simultaneous sweep (1000 = offline)
segment_size=320                # ms of audio SimulEval sends per read
eval_max_instances=""           # evaluate only the first N instances (quick checks)
agent_device=""                 # cpu | cuda (default: cuda when ngpus > 0)

# ---- option parsing --------------------------------------------------------------------------
log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}
die() { log "ERROR: $*"; exit 1; }

parse_options() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
      --help|-h) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
      --*)
        local name=${1#--}; name=${name//-/_}
        [ $# -ge 2 ] || die "option $1 needs a value"
        if ! declare -p "$name" >/dev/null 2>&1; then die "unknown option $1 (see --help)"; fi
        if [ "$name" = recipe ]; then
          [ -f "$2" ] || die "--recipe $2: no such file"
          # shellcheck disable=SC1090
          source "$2"
        else
          printf -v "$name" '%s' "$2"
        fi
        shift 2 ;;
      *) die "unexpected argument $1 (options are --name value)" ;;
    esac
  done
}
cd "$(dirname "$0")/.."
parse_options "$@"
data_dir=${data_dir:-$exp_dir/data}
mkdir -p "$exp_dir"
case "$corpus" in mustc|builtin|text) ;; *) die "--corpus $corpus: use mustc, builtin or text" ;; esac

read -r -a methods_arr <<< "$methods"
read -r -a k_arr <<< "$k_list"
for m in "${methods_arr[@]}"; do
  [ -f "configs/methods/$m.args" ] || die "--methods: no configs/methods/$m.args for method '$m'"
done
[ -f "$train_args" ] || die "--train-args $train_args: no such file"

# Flags from an .args file: one or more per line, '#' starts a comment.
args_from() { sed 's/#.*//' "$1" | xargs; }

run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
done_marker() { echo "$1/.done"; }

# fairseq-train for one model, on CPU, one or more GPUs, or several nodes.
fairseq_train() {
  local save_dir=$1; shift
  local launcher=(fairseq-train)
  local dist=()
  if [ "$ngpus" -eq 0 ]; then
    dist=(--cpu)
  elif [ "$nnodes" -gt 1 ]; then
    launcher=(torchrun --nproc_per_node "$ngpus" --nnodes "$nnodes" --node_rank "$node_rank"
              --master_addr "$master_addr" --master_port "$master_port" "$(command -v fairseq-train)")
    dist=(--distributed-world-size $((ngpus * nnodes)))
  elif [ "$ngpus" -gt 1 ]; then
    dist=(--distributed-world-size "$ngpus")
  fi
  mkdir -p "$save_dir"
  python -m fairseq_mgcm.recipe.peak_memory "$save_dir/../train_peak.json" -- \
    "${launcher[@]}" "$data_dir" --user-dir fairseq_mgcm --config-yaml config.yaml \
    --train-subset train --valid-subset dev --save-dir "$save_dir" --seed "$seed" \
    "${dist[@]}" "$@" 2>&1 | tee -a "$save_dir/train.log"
  return "${PIPESTATUS[0]}"
}

# ---- stage 0: corpus -------------------------------------------------------------------------
corpus_dir=$exp_dir/corpus
if [ "$corpus" = mustc ]; then
  [ -n "$mustc_root" ] || die "MUSTC_ROOT is not set: pass --mustc-root /path/to/MUSTC_v1.0 (the folder holding en-de/), or --corpus builtin"
  [ -d "$mustc_root/en-de/data" ] || die "--mustc-root $mustc_root: no en-de/data inside (expected MuST-C v1.0 layout)"
else
  mustc_root=$corpus_dir
  if run_stage 0 && [ ! -f "$(done_marker "$corpus_dir")" ]; then
    log "Stage 0: make a $corpus corpus in MuST-C layout -> $corpus_dir"
    read -r n_train n_dev n_test <<< "$corpus_sizes"
    text_args=()
    if [ "$corpus" = text ]; then
      [ -n "$src_text" ] && [ -n "$tgt_text" ] || die "--corpus text needs --src-text and --tgt-text"
      text_args=(--src-text "$src_text" --tgt-text "$tgt_text"
                 --max-sentences $((n_train + n_dev + n_test)))
    fi
    python scripts/make_corpus.py --out "$corpus_dir" "${text_args[@]}" \
      --n-train "$n_train" --n-dev "$n_dev" --n-test "$n_test" --seed "$corpus_seed"
    touch "$(done_marker "$corpus_dir")"
  fi
fi

# ---- stage 1: data preparation ---------------------------------------------------------------
if run_stage 1 && [ ! -f "$(done_marker "$data_dir")" ]; then
  log "Stage 1: prepare $mustc_root -> $data_dir"
  python scripts/prepare_mustc.py --mustc-root "$mustc_root" --out-dir "$data_dir" \
    --vocab-size-tgt "$vocab_size_tgt" --vocab-size-src "$vocab_size_src"
  touch "$(done_marker "$data_dir")"
fi

# ---- stage 2: ASR pre-training ---------------------------------------------------------------
asr_dir=$exp_dir/asr_pretrain
pretrained_args=()
if [ "$asr_pretrain" = true ]; then
  pretrained_args=(--load-pretrained-encoder-from "$asr_dir/checkpoints/checkpoint_best.pt")
  if run_stage 2 && [ ! -f "$(done_marker "$asr_dir")" ]; then
    log "Stage 2: ASR pre-training -> $asr_dir"
    # shellcheck disable=SC2046
    fairseq_train "$asr_dir/checkpoints" $(args_from "$train_args") $(args_from "$asr_args")
    touch "$(done_marker "$asr_dir")"
  fi
fi

# ---- stage 3: training -----------------------------------------------------------------------
if run_stage 3; then
  for m in "${methods_arr[@]}"; do
    out=$exp_dir/$m
    [ -f "$(done_marker "$out/checkpoints")" ] && { log "Stage 3: $m already trained"; continue; }
    log "Stage 3: train with --conflict-method from configs/methods/$m.args -> $out"
    # Resumes from checkpoint_last.pt when an earlier run was interrupted.
    # shellcheck disable=SC2046
    fairseq_train "$out/checkpoints" $(args_from "$train_args") $(args_from "configs/methods/$m.args") \
      --conflict-telemetry-jsonl "$out/conflict.jsonl" "${pretrained_args[@]}"
    touch "$(done_marker "$out/checkpoints")"
  done
fi

# ---- stage 4: checkpoint averaging -----------------------------------------------------------
if run_stage 4; then
  for m in "${methods_arr[@]}"; do
    log "Stage 4: average the last $n_average checkpoints of $m"
    python scripts/average_checkpoints.py --save-dir "$exp_dir/$m/checkpoints" \
      --num "$n_average" --output "$exp_dir/$m/checkpoint_avg.pt"
  done
fi

# ---- stage 5: offline BLEU -------------------------------------------------------------------
if run_stage 5; then
  for m in "${methods_arr[@]}"; do
    log "Stage 5: offline BLEU of $m on $test_set (beam $beam)"
    cpu=(); [ "$ngpus" -eq 0 ] && cpu=(--cpu)
    fairseq-generate "$data_dir" --user-dir fairseq_mgcm --config-yaml config.yaml \
      --gen-subset "$test_set" --task speech_to_text_multitask \
      --path "$exp_dir/$m/checkpoint_avg.pt" --max-tokens 50000 --beam "$beam" \
      --scoring sacrebleu "${cpu[@]}" > "$exp_dir/$m/generate-$test_set.txt"
    tail -n 1 "$exp_dir/$m/generate-$test_set.txt" | tee "$exp_dir/$m/offline_bleu.txt"
  done
fi

# ---- stage 6: simultaneous evaluation --------------------------------------------------------
if run_stage 6; then
  device=${agent_device:-$([ "$ngpus" -gt 0 ] && echo cuda || echo cpu)}
  max_args=(); [ -n "$eval_max_instances" ] && max_args=(--max-instances "$eval_max_instances")
  for m in "${methods_arr[@]}"; do
    log "Stage 6: SimulEval sweep of $m over k = ${k_arr[*]}"
    python scripts/simuleval_sweep.py --checkpoint "$exp_dir/$m/checkpoint_avg.pt" \
      --data-dir "$data_dir" --split "$test_set" --k "${k_arr[@]}" \
      --segment-size "$segment_size" --device "$device" "${max_args[@]}" \
      --output-dir "$exp_dir/$m/simul"
  done
fi

# ---- stage 7: results ------------------------------------------------------------------------
if run_stage 7; then
  log "Stage 7: results table, BLEU-AL plot and conflict heat maps"
  for m in "${methods_arr[@]}"; do
    if [ -s "$exp_dir/$m/conflict.jsonl" ]; then
      python scripts/plot_conflicts.py "$exp_dir/$m/conflict.jsonl" "$exp_dir/$m/conflicts.png"
    fi
  done
  python scripts/report_results.py --exp-dir "$exp_dir" --methods "${methods_arr[@]}"
fi
log "done: stages $stage..$stop_stage in $exp_dir"
