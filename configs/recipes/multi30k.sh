# Method comparison on a realistic corpus: Multi30k task 1 English (spoken by espeak-ng) ->
# German, none / pcgrad / mgcm with identical seeds and budgets. The demo's model and machine;
# what differs is below.
# Usage: scripts/run.sh --recipe configs/recipes/multi30k.sh [--corpus-sizes "8000 300 300"]
source configs/recipes/demo.sh
corpus=text
src_text=../shared/data/multi30k/train.en.gz
tgt_text=../shared/data/multi30k/train.de.gz
corpus_sizes="4000 200 200"
exp_dir=exp/multi30k
vocab_size_tgt=1000
vocab_size_src=800
train_budget="--max-epoch 20"
methods="none pcgrad mgcm"
