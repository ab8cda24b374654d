#!/usr/bin/env bash
# The fairseq-mgcm recipe: MuST-C (or a corpus we make) -> trained SimulST models per
# gradient-conflict method -> offline BLEU, simultaneous BLEU/latency sweep, table and plot.
#
# Usage:
#   scripts/run.sh --mustc-root /data/MUSTC_v1.0 [--stage N] [--stop-stage M] [options]
#   scripts/run.sh --recipe configs/recipes/demo.sh           # the CPU demo's settings
#
# Stages (a re-run skips every stage whose outputs are up to date with its inputs and flags):
#   0  make a corpus in MuST-C layout (only when --corpus is builtin or text)
#   1  prepare data: fbank, SentencePiece, CMVN, manifests, SimulEval inputs
#   2  ASR pre-training of the encoder (only when --asr-pretrain true)
#   3  train one model per method in --methods (CPU, one or more GPUs, several nodes); an
#      interrupted or extended training resumes from its checkpoint_last.pt
#   4  average the last --n-average checkpoints
#   5  offline BLEU on --test-set with fairseq-generate
#   6  simultaneous evaluation with SimulEval over --k-list
#   7  results table (markdown), BLEU-AL plot and per-method conflict heat maps (PNG); with
#      --seeds, means and spreads over seeds and sacrebleu paired significance tests
#
# With --seeds "1 2 3", stages 3-7 run once per seed (every method, then the table), each run in
# $exp_dir/<method>/seed<N>/, so the table and plot grow as seeds finish and a stopped run
# continues where it was. Without it, one run per method in $exp_dir/<method>/ with --seed.
# With --jobs N (CPU), N runs (a method and seed: stages 3-6) go at once, each on nproc/N threads,
# in seed order, their output in $exp_dir/logs/; the table is rewritten as each one finishes. On
# 2 cores two one-thread trainings did 1.5x the updates of one two-thread training (recipe.md).
#
# Training flags are joined in this order, later ones winning: --model-args, --hardware-args,
# configs/methods/<method>.args (stage 2: --asr-args), --overlays, --train-budget, the recipe's own flags
# (data, save dir, seed, telemetry, devices), --extra-train-args. Every combination is parsed by
# fairseq-train's parser before stage 0, so a bad flag stops the run at once, naming its file.
#
# Every default below is a --flag (underscores become dashes). A --recipe file is sourced
# first, so flags given after it override it. Bad values exit with status 2.
set -euo pipefail

# ---- defaults --------------------------------------------------------------------------------
stage=0
stop_stage=100
recipe=""                       # shell file setting defaults below (configs/recipes/)
corpus=mustc                    # mustc | builtin (the grammar corpus) | text (--src/tgt-text)
mustc_root="${MUSTC_ROOT:-}"    # MuST-C v1.0 root (holds en-de/ ...); required for corpus=mustc
src_lang=en                     # MuST-C v1.0 is English -> X
tgt_lang=de                     # de es fr it nl pt ro ru: reads (or makes) en-<tgt_lang>/
src_text=""                     # corpus=text: English side, line-aligned with --tgt-text
tgt_text=""                     # corpus=text: target side
dev_text=""                     # corpus=text: "SRC TGT" files for dev (default: held out of the text)
test_text=""                    # corpus=text: "SRC TGT" files for tst-COMMON (e.g. an official test set)
corpus_sizes="2000 100 100"     # corpus=builtin|text: utterances in train dev tst-COMMON
corpus_seed=1
exp_dir=exp/mustc_s             # everything this run writes
data_dir=""                     # prepared data (default: $exp_dir/data)
vocab_size_tgt=8000
vocab_size_src=5000
specaugment=""                  # lb | ld | sm | ss: fairseq's SpecAugment policy on train splits
model_args=configs/model/s.args           # model, losses, optimiser, schedule
hardware_args=configs/hardware/1gpu.args  # batch size, precision, workers for the machine
train_budget=""                 # e.g. "--max-epoch 12" (the recipes' budgets)
extra_train_args=""             # flags appended after all others, e.g. "--max-update 2"
methods="none mgcm pcgrad discard"        # each has configs/methods/<method>.args
overlays=""                     # .args files joined after the method's in stage 3 (e.g. configs/overlays/mt.args)
asr_pretrain=false
asr_args=configs/overlays/asr_pretrain.args
ngpus=1                         # GPUs per node; 0 trains on CPU
nprocs=""                       # training processes per node (default: ngpus, or 1 on CPU)
nnodes=1                        # >1: multi-node through torchrun
node_rank=0
master_addr=localhost
master_port=29500
seed=1                          # the seed of the single run per method (without --seeds)
seeds=""                        # e.g. "1 2 3": every method once per seed (see the header)
jobs=1                          # CPU: trainings (with their evaluations) run side by side, each on nproc/jobs threads
n_average=5
test_set=tst-COMMON
beam=5
k_list="1 3 5 7 9 1000"         # wait-k values for the simultaneous sweep (1000 = offline)
segment_size=""                 # ms of audio SimulEval sends per read (default: the model's read step)
eval_max_instances=""           # evaluate only the first N instances (quick checks)
agent_device=""                 # cpu | cuda (default: cuda when ngpus > 0)

# ---- option parsing --------------------------------------------------------------------------
log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}
die() { log "ERROR: $*"; exit 1; }
bad_input() { log "ERROR: $*"; exit 2; }

script_args=("$@")  # --jobs re-runs this script per method and seed, with these and its own
cd "$(dirname "$0")/.."
# The option names are exactly the variables of the defaults block above.
known_options=" $(sed -n '/^# ---- defaults/,/^# ---- option parsing/p' "$0" \
  | grep -oE '^[a-z_]+=' | tr -d '=' | tr '\n' ' ') "
is_option() { [[ "$known_options" == *" $1 "* ]]; }

# A recipe may only assign known options (or source another recipe): a typo there is an error.
source_recipe() {
  local file=$1 number=0 line name
  [ -f "$file" ] || bad_input "--recipe $file: no such file"
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    [[ "$line" =~ ^[[:space:]]*(#.*)?$ ]] && continue
    if [[ "$line" =~ ^source[[:space:]]+([^[:space:]]+)[[:space:]]*$ ]]; then
      [ -f "${BASH_REMATCH[1]}" ] || bad_input "$file:$number: sources ${BASH_REMATCH[1]}, no such file"
      source_recipe "${BASH_REMATCH[1]}"
      continue
    fi
    [[ "$line" =~ ^([a-z_]+)= ]] || bad_input "$file:$number: expected 'name=value', got: $line"
    name=${BASH_REMATCH[1]}
    is_option "$name" || bad_input "$file:$number: unknown setting '$name' (see scripts/run.sh --help)"
  done < "$file"
  # shellcheck disable=SC1090
  source "$file"
}

parse_options() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
      --help|-h) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
      --*)
        local name=${1#--}; name=${name//-/_}
        is_option "$name" || bad_input "unknown option $1 (see --help)"
        [ $# -ge 2 ] || bad_input "option $1 needs a value"
        if [ "$name" = recipe ]; then
          source_recipe "$2"
        else
          printf -v "$name" '%s' "$2"
        fi
        shift 2 ;;
      *) bad_input "unexpected argument $1 (options are --name value)" ;;
    esac
  done
}
parse_options "$@"

# ---- checks, before anything is written ------------------------------------------------------
flag_of() { echo "--${1//_/-}"; }
want_int() {  # want_int NAME [NAME...]: each set to a non-negative integer
  local name
  for name in "$@"; do
    [[ "${!name}" =~ ^[0-9]+$ ]] || bad_input "$(flag_of "$name") '${!name}': expected a non-negative integer"
  done
}
want_int_list() {  # want_int_list NAME COUNT (COUNT empty: any length >= 1)
  local name=$1 count=${2:-} value
  local -a values
  read -r -a values <<< "${!name}"
  [ ${#values[@]} -gt 0 ] || bad_input "$(flag_of "$name") is empty"
  [ -z "$count" ] || [ ${#values[@]} -eq "$count" ] \
    || bad_input "$(flag_of "$name") '${!name}': expected $count integers"
  for value in "${values[@]}"; do
    [[ "$value" =~ ^[0-9]+$ ]] || bad_input "$(flag_of "$name") '${!name}': '$value' is not an integer"
  done
}
want_int stage stop_stage corpus_seed vocab_size_tgt vocab_size_src ngpus nnodes node_rank \
  master_port seed n_average beam jobs
[ "$jobs" -ge 1 ] || bad_input "--jobs 0: at least one run at a time"
[ "$jobs" -eq 1 ] || [ "$ngpus" -eq 0 ] \
  || bad_input "--jobs $jobs: side-by-side runs are for CPU (--ngpus 0); on GPUs use --ngpus"
[ -z "$nprocs" ] || want_int nprocs
[ -z "$segment_size" ] || want_int segment_size
[ -z "$eval_max_instances" ] || want_int eval_max_instances
want_int_list k_list
want_int_list corpus_sizes 3
seed_list=("$seed")               # one run per method, or one per method and seed
if [ -n "$seeds" ]; then
  want_int_list seeds
  read -r -a seed_list <<< "$seeds"
  declare -A seen_seed=()
  for s in "${seed_list[@]}"; do
    [ -z "${seen_seed[$((10#$s))]:-}" ] || bad_input "--seeds '$seeds': seed $s is repeated (each seed is one run per method)"
    seen_seed[$((10#$s))]=1
  done
fi
case "$corpus" in mustc|builtin|text) ;; *) bad_input "--corpus $corpus: use mustc, builtin or text" ;; esac
case "$tgt_lang" in de|es|fr|it|nl|pt|ro|ru) ;; *) bad_input "--tgt-lang $tgt_lang: MuST-C v1.0 has de es fr it nl pt ro ru" ;; esac
[ "$src_lang" = en ] || bad_input "--src-lang $src_lang: MuST-C v1.0 is English -> X (use en)"
case "$specaugment" in ""|lb|ld|sm|ss) ;; *) bad_input "--specaugment $specaugment: use lb, ld, sm or ss (fairseq's policies) or leave it empty" ;; esac
case "$asr_pretrain" in true|false) ;; *) bad_input "--asr-pretrain $asr_pretrain: use true or false" ;; esac
[ "$node_rank" -lt "$nnodes" ] || bad_input "--node-rank $node_rank: must be below --nnodes $nnodes"
[ -n "$nprocs" ] || nprocs=$([ "$ngpus" -gt 0 ] && echo "$ngpus" || echo 1)
[ "$ngpus" -eq 0 ] || [ "$nprocs" -eq "$ngpus" ] \
  || bad_input "--nprocs $nprocs: with GPUs there is one process per GPU (--ngpus $ngpus)"
[ "$nnodes" -eq 1 ] || [ "$ngpus" -gt 0 ] || bad_input "--nnodes $nnodes needs GPUs (--ngpus)"

read -r -a methods_arr <<< "$methods"
read -r -a k_arr <<< "$k_list"
[ ${#methods_arr[@]} -gt 0 ] || bad_input "--methods is empty"
for m in "${methods_arr[@]}"; do
  [ -f "configs/methods/$m.args" ] || bad_input "--methods: no configs/methods/$m.args for method '$m'"
done
for name in model_args hardware_args; do
  [ -f "${!name}" ] || bad_input "$(flag_of "$name") ${!name}: no such file"
done
[ "$asr_pretrain" = false ] || [ -f "$asr_args" ] || bad_input "--asr-args $asr_args: no such file"
read -r -a overlays_arr <<< "$overlays"
for f in "${overlays_arr[@]}"; do [ -f "$f" ] || bad_input "--overlays: $f: no such file"; done
if [ "$corpus" = mustc ]; then
  [ -n "$mustc_root" ] || bad_input "MUSTC_ROOT is not set: pass --mustc-root /path/to/MUSTC_v1.0 (the folder holding en-de/), or --corpus builtin"
  [ -d "$mustc_root/$src_lang-$tgt_lang/data" ] || bad_input "--mustc-root $mustc_root: no $src_lang-$tgt_lang/data inside (expected MuST-C v1.0 layout; --tgt-lang picks the pair)"
elif [ "$corpus" = text ]; then
  [ -n "$src_text" ] && [ -n "$tgt_text" ] || bad_input "--corpus text needs --src-text and --tgt-text"
  for name in src_text tgt_text; do
    [ -f "${!name}" ] || bad_input "$(flag_of "$name") ${!name}: no such file"
  done
  for name in dev_text test_text; do
    [ -n "${!name}" ] || continue
    read -r -a pair <<< "${!name}"
    [ ${#pair[@]} -eq 2 ] || bad_input "$(flag_of "$name") '${!name}': expected two files, SRC TGT"
    for f in "${pair[@]}"; do [ -f "$f" ] || bad_input "$(flag_of "$name"): $f: no such file"; done
  done
fi
data_dir=${data_dir:-$exp_dir/data}
[ ! -e "$exp_dir" ] || [ -d "$exp_dir" ] || bad_input "--exp-dir $exp_dir: exists and is not a folder"

# The flags of one training: its files, then the budget (NUL-separated, split by the same
# reader the check below uses).
flags_of() {
  python fairseq_mgcm/recipe/train_flags.py --print --budget "$train_budget" "$(IFS=,; echo "$*")"
}
combos=()
overlay_csv=$(IFS=,; echo "${overlays_arr[*]}")
for m in "${methods_arr[@]}"; do
  combos+=("$model_args,$hardware_args,configs/methods/$m.args${overlay_csv:+,$overlay_csv}")
done
[ "$asr_pretrain" = false ] || combos+=("$model_args,$hardware_args,$asr_args")
# What the recipe itself adds (placeholders for paths), so a clash with it shows up here too.
recipe_flags="--config-yaml config.yaml --train-subset train --valid-subset dev --save-dir SAVE
  --seed $seed --conflict-telemetry-jsonl TELEMETRY $([ "$ngpus" -gt 0 ] || echo --cpu)"
python -m fairseq_mgcm.recipe.train_flags --budget "$train_budget" --recipe-flags "$recipe_flags" \
  --extra "$extra_train_args" "${combos[@]}" 2> >(grep -v '^INFO:' >&2) \
  || bad_input "fix the training flags above (nothing was run)"

# ---- helpers ---------------------------------------------------------------------------------
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
on_first_node() { [ "$node_rank" -eq 0 ]; }
skip_on_other_nodes() { log "Stage $1: skipped on node $node_rank (node 0 does it)"; }

# A done marker records what produced the output (a command line or flags); the stage is done
# when the marker exists and records the same thing, so changed settings redo it.
is_done() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
mark_done() { printf '%s' "$2" > "$1.tmp" && mv "$1.tmp" "$1"; }
# up_to_date OUT IN...: OUT exists and no IN is newer (for the cheap, always-derivable stages).
up_to_date() {
  local out=$1; shift
  [ -e "$out" ] || return 1
  local in
  for in in "$@"; do [ ! "$in" -nt "$out" ] || return 1; done
}
# run_once STAGE MARKER WHAT DOING CMD...: on node 0, run CMD unless MARKER records it already.
run_once() {
  local stage_no=$1 marker=$2 what=$3 doing=$4; shift 4
  if ! on_first_node; then
    skip_on_other_nodes "$stage_no"
  elif is_done "$marker" "$*"; then
    log "Stage $stage_no: $what is up to date"
  else
    log "Stage $stage_no: $doing"
    "$@"
    mark_done "$marker" "$*"
  fi
}
wait_for() {  # wait_for FILE WHAT: other nodes wait until node 0 has finished a shared stage
  until [ -f "$1" ]; do log "node $node_rank: waiting for node 0 to $2 ($1)"; sleep 30; done
}

# fairseq-train for one model, on CPU (one or more processes), one or more GPUs, or nodes.
fairseq_train() {
  local save_dir=$1; shift
  local launcher=(fairseq-train)
  local dist=()
  if [ "$ngpus" -eq 0 ]; then
    dist=(--cpu)
    # fairseq's own launchers assume CUDA; this one starts the ranks itself (gloo).
    [ "$nprocs" -le 1 ] || launcher=(python -m fairseq_mgcm.recipe.cpu_launch --nprocs "$nprocs" -- fairseq-train)
  elif [ "$nnodes" -gt 1 ]; then
    launcher=(torchrun --nproc_per_node "$ngpus" --nnodes "$nnodes" --node_rank "$node_rank"
              --master_addr "$master_addr" --master_port "$master_port" "$(command -v fairseq-train)")
    dist=(--distributed-world-size $((ngpus * nnodes)))
  elif [ "$ngpus" -gt 1 ]; then
    dist=(--distributed-world-size "$ngpus")
  fi
  local suffix=""; on_first_node || suffix=".node$node_rank"
  mkdir -p "$save_dir"
  log "command: $(printf '%q ' "${launcher[@]}" "$data_dir" --user-dir fairseq_mgcm "${dist[@]}" "$@")"
  python -m fairseq_mgcm.recipe.peak_memory "$save_dir/../train_peak$suffix.json" -- \
    "${launcher[@]}" "$data_dir" --user-dir fairseq_mgcm "${dist[@]}" "$@" 2>&1 \
    | tee -a "$save_dir/train$suffix.log"
  return "${PIPESTATUS[0]}"
}

# On CPU a GPU config's half precision runs in fp32: fp16 matrix products are ~50x slower than
# fp32 on the CPUs this was measured on, and fairseq's FP16Optimizer needs a CUDA device.
cpu_precision() {
  local -n _flags=$1
  local -a kept=()
  local flag
  for flag in "${_flags[@]}"; do
    case "$flag" in
      --fp16|--bf16|--amp|--memory-efficient-fp16|--memory-efficient-bf16)
        log "CPU run: dropping $flag (half precision runs in fp32 on CPU)" ;;
      *) kept+=("$flag") ;;
    esac
  done
  _flags=("${kept[@]}")
}

# ---- stage 0: corpus -------------------------------------------------------------------------
corpus_dir=$exp_dir/corpus
mkdir -p "$exp_dir"
if [ "$corpus" != mustc ]; then
  mustc_root=$corpus_dir
  read -r n_train n_dev n_test <<< "$corpus_sizes"
  corpus_cmd=(python scripts/make_corpus.py --out "$corpus_dir" --tgt-lang "$tgt_lang"
              --n-train "$n_train" --n-dev "$n_dev" --n-test "$n_test" --seed "$corpus_seed")
  if [ "$corpus" = text ]; then
    held_out=$(( (${#dev_text} ? 0 : n_dev) + (${#test_text} ? 0 : n_test) ))
    corpus_cmd+=(--src-text "$src_text" --tgt-text "$tgt_text"
                 --max-sentences $((n_train + held_out)))
    # shellcheck disable=SC2206
    [ -z "$dev_text" ] || corpus_cmd+=(--dev-text $dev_text)
    # shellcheck disable=SC2206
    [ -z "$test_text" ] || corpus_cmd+=(--test-text $test_text)
  fi
  if run_stage 0; then
    run_once 0 "$exp_dir/.stage0_corpus.done" "corpus $corpus_dir" \
      "make a $corpus corpus in MuST-C layout -> $corpus_dir" "${corpus_cmd[@]}"
  fi
fi

# ---- stage 1: data preparation ---------------------------------------------------------------
prepare_cmd=(python scripts/prepare_mustc.py --mustc-root "$mustc_root" --out-dir "$data_dir"
             --src-lang "$src_lang" --tgt-lang "$tgt_lang"
             --vocab-size-tgt "$vocab_size_tgt" --vocab-size-src "$vocab_size_src")
[ -z "$specaugment" ] || prepare_cmd+=(--specaugment "$specaugment")
# Beside the data folder, not in it: prepare_mustc.py keeps its own markers in $data_dir/.done/.
data_marker=$exp_dir/.stage1_prepare.done
corpus_marker=$exp_dir/.stage0_corpus.done
# A corpus re-made in stage 0 (other sizes or seed) makes the prepared data stale, although
# the prepare command line is the same: prepare again (its own markers redo what changed).
if [ "$corpus" != mustc ] && [ "$corpus_marker" -nt "$data_marker" ] && [ -f "$data_marker" ]; then
  log "Stage 1: the corpus changed since it was prepared"
  rm -f "$data_marker"
fi
if run_stage 1; then
  run_once 1 "$data_marker" "prepared data $data_dir" \
    "prepare $mustc_root -> $data_dir" "${prepare_cmd[@]}"
fi

# ---- stage 2: ASR pre-training ---------------------------------------------------------------
# train_model NAME OUT FILE...: train into OUT/checkpoints unless its marker records these flags.
train_model() {
  local name=$1 out=$2; shift 2
  local -a flags extra
  mapfile -d '' flags < <(flags_of "$model_args" "$hardware_args" "$@")
  mapfile -d '' extra < <(python fairseq_mgcm/recipe/train_flags.py --print \
    --extra "$extra_train_args" "")
  flags+=(--config-yaml config.yaml --train-subset train --valid-subset dev
          --save-dir "$out/checkpoints" --seed "$seed" "${run_flags[@]}" "${extra[@]}")
  [ "$ngpus" -gt 0 ] || cpu_precision flags
  local marker=$out/.train.done
  if is_done "$marker" "${flags[*]}"; then
    log "Stage $stage_now: $name already trained with these flags ($out)"
    return 0
  fi
  [ ! -f "$marker" ] || log "Stage $stage_now: $name: flags changed since it was trained; fairseq-train resumes from checkpoint_last.pt"
  on_first_node || wait_for "$data_marker" "prepare the data"
  log "Stage $stage_now: train $name -> $out"
  fairseq_train "$out/checkpoints" "${flags[@]}"
  if on_first_node; then mark_done "$marker" "${flags[*]}"; fi
}

asr_dir=$exp_dir/asr_pretrain
pretrained_args=()
if [ "$asr_pretrain" = true ]; then
  pretrained_args=(--load-pretrained-encoder-from "$asr_dir/checkpoints/checkpoint_best.pt")
  if run_stage 2; then
    stage_now=2
    run_flags=()
    train_model "ASR pre-training" "$asr_dir" "$asr_args"
  fi
fi

# ---- stages 3-7, once per seed ---------------------------------------------------------------
# run_dir METHOD SEED: where one training and its evaluations live.
run_dir() { if [ -n "$seeds" ]; then echo "$exp_dir/$1/seed$2"; else echo "$exp_dir/$1"; fi; }

# ---- stage 3: training -----------------------------------------------------------------------
train_methods() {
  local m dir
  for m in "${methods_arr[@]}"; do
    stage_now=3
    dir=$(run_dir "$m" "$seed")
    run_flags=(--conflict-telemetry-jsonl "$dir/conflict.jsonl" "${pretrained_args[@]}")
    train_model "$m${seeds:+ (seed $seed)}" "$dir" "configs/methods/$m.args" "${overlays_arr[@]}"
  done
}

# ---- stage 4: checkpoint averaging -----------------------------------------------------------
average_methods() {
  local m dir avg avg_marker
  for m in "${methods_arr[@]}"; do
    dir=$(run_dir "$m" "$seed")
    avg=$dir/checkpoint_avg.pt
    avg_marker=$dir/.average.done
    if is_done "$avg_marker" "$n_average" && up_to_date "$avg_marker" "$dir"/checkpoints/checkpoint*.pt; then
      log "Stage 4: $avg is up to date"
      continue
    fi
    log "Stage 4: average the last $n_average checkpoints of $m${seeds:+ (seed $seed)}"
    python scripts/average_checkpoints.py --save-dir "$dir/checkpoints" \
      --num "$n_average" --output "$avg"
    mark_done "$avg_marker" "$n_average"
  done
}

# ---- stage 5: offline BLEU -------------------------------------------------------------------
offline_methods() {
  local m dir out offline_marker cpu
  for m in "${methods_arr[@]}"; do
    dir=$(run_dir "$m" "$seed")
    out=$dir/generate-$test_set.txt
    offline_marker=$dir/.offline.done
    if is_done "$offline_marker" "$test_set beam $beam" && up_to_date "$offline_marker" "$dir/checkpoint_avg.pt"; then
      log "Stage 5: offline BLEU of $m${seeds:+ (seed $seed)} is up to date"
      continue
    fi
    log "Stage 5: offline BLEU of $m${seeds:+ (seed $seed)} on $test_set (beam $beam)"
    cpu=(); [ "$ngpus" -eq 0 ] && cpu=(--cpu)
    fairseq-generate "$data_dir" --user-dir fairseq_mgcm --config-yaml config.yaml \
      --gen-subset "$test_set" --task speech_to_text_multitask \
      --path "$dir/checkpoint_avg.pt" --max-tokens 50000 --beam "$beam" \
      --scoring sacrebleu "${cpu[@]}" > "$out.tmp"
    mv "$out.tmp" "$out"
    tail -n 1 "$out" > "$dir/offline_bleu.txt.tmp"
    mv "$dir/offline_bleu.txt.tmp" "$dir/offline_bleu.txt"
    cat "$dir/offline_bleu.txt"
    mark_done "$offline_marker" "$test_set beam $beam"
  done
}

# ---- stage 6: simultaneous evaluation --------------------------------------------------------
sweep_methods() {
  local m dir device
  device=${agent_device:-$([ "$ngpus" -gt 0 ] && echo cuda || echo cpu)}
  local -a sweep_args=()
  [ -n "$eval_max_instances" ] && sweep_args+=(--max-instances "$eval_max_instances")
  [ -n "$segment_size" ] && sweep_args+=(--segment-size "$segment_size")
  for m in "${methods_arr[@]}"; do
    dir=$(run_dir "$m" "$seed")
    log "Stage 6: SimulEval sweep of $m${seeds:+ (seed $seed)} over k = ${k_arr[*]}"
    python scripts/simuleval_sweep.py --checkpoint "$dir/checkpoint_avg.pt" \
      --data-dir "$data_dir" --split "$test_set" --k "${k_arr[@]}" \
      --device "$device" "${sweep_args[@]}" --output-dir "$dir/simul"
  done
}

# ---- stage 7: results ------------------------------------------------------------------------
# Over every run so far (all seeds): a run that has not finished yet is reported as missing.
report() {
  local m s dir telemetry f what
  local -a inputs=()
  log "Stage 7: results table, BLEU-AL plot and conflict heat maps"
  for m in "${methods_arr[@]}"; do
    for s in "${seed_list[@]}"; do
      dir=$(run_dir "$m" "$s")
      telemetry=$dir/conflict.jsonl
      if [ -s "$telemetry" ] && ! up_to_date "$dir/conflicts.png" "$telemetry"; then
        python scripts/plot_conflicts.py "$telemetry" "$dir/conflicts.png"
      fi
      for f in simul/results.tsv offline_bleu.txt generate-$test_set.txt train_peak.json conflict.jsonl; do
        [ -e "$dir/$f" ] && inputs+=("$dir/$f")
      done
    done
  done
  what="${methods_arr[*]} seeds ${seeds:-none} $test_set"
  local results_marker=$exp_dir/.stage7_results.done
  if is_done "$results_marker" "$what" && up_to_date "$results_marker" "${inputs[@]}"; then
    log "Stage 7: results are up to date"
  else
    # The marker takes the time the inputs were read, not when the table was written: a run
    # finishing meanwhile (--jobs) is then newer than it, and the next report includes it.
    printf '%s' "$what" > "$results_marker.tmp"
    python scripts/report_results.py --exp-dir "$exp_dir" --methods "${methods_arr[@]}" \
      --test-set "$test_set" ${seeds:+--seeds $seeds}
    mv "$results_marker.tmp" "$results_marker"
  fi
}

# ---- --jobs N: runs side by side ---------------------------------------------------------------
# Each run (a method and seed) is this script again for stages 3-6 of that run alone, on
# nproc/N threads. When one finishes, the next starts first and the table (stage 7, which takes
# a while for the significance tests) is rewritten after. A run that fails stops new ones from
# starting; those running finish (every stage resumes on a re-run).
run_in_parallel() {
  # nproc itself honours OMP_NUM_THREADS: ask it for the cores without that.
  local threads=$(( $(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) / jobs ))
  local failed=0 finished=0 m s id
  [ "$threads" -ge 1 ] || threads=1
  local first=$(( stage > 3 ? stage : 3 )) last=$(( stop_stage < 6 ? stop_stage : 6 ))
  local -A job_of=()
  mkdir -p "$exp_dir/logs"
  reap_one() {  # wait for any run to end; log it
    local pid rc=0
    wait -n -p pid "${!job_of[@]}" || rc=$?  # only our runs, not a process substitution
    id=${job_of[$pid]}; unset "job_of[$pid]"
    if [ "$rc" -eq 0 ]; then
      log "finished $id"; finished=1
    else
      log "ERROR: $id failed (exit $rc): see $exp_dir/logs/$id.log"; failed=1
    fi
  }
  report_if_finished() {
    [ "$finished" -eq 1 ] || return 0
    finished=0
    if run_stage 7; then report; fi
  }
  for s in "${seed_list[@]}"; do
    for m in "${methods_arr[@]}"; do
      while [ ${#job_of[@]} -ge "$jobs" ]; do reap_one; done
      [ "$failed" -eq 0 ] || break 2
      id=$m${seeds:+_seed$s}
      log "start $id ($threads thread(s)): $exp_dir/logs/$id.log"
      OMP_NUM_THREADS=${OMP_NUM_THREADS:-$threads} bash "$0" "${script_args[@]}" --jobs 1 \
        --methods "$m" ${seeds:+--seeds "$s"} --stage "$first" --stop-stage "$last" \
        > "$exp_dir/logs/$id.log" 2>&1 &
      job_of[$!]=$id
      report_if_finished
    done
  done
  while [ ${#job_of[@]} -gt 0 ]; do reap_one; report_if_finished; done
  report_if_finished
  [ "$failed" -eq 0 ] || die "a run failed; the others finished (re-run to resume)"
}

if [ "$jobs" -gt 1 ]; then
  if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 3 ]; then run_in_parallel; fi
  if run_stage 7; then report; fi
  log "done: stages $stage..$stop_stage in $exp_dir"
  exit 0
fi

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
