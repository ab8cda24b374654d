# Method comparison on a realistic corpus: Multi30k task 1 English (spoken by espeak-ng) -> German.
# none / pcgrad / mgcm with identical seeds and budgets.
# Usage: scripts/run.sh --recipe configs/recipes/multi30k.sh [--corpus-sizes "8000 300 300"]
corpus=text
src_text=../shared/data/multi30k/train.en.gz
tgt_text=../shared/data/multi30k/train.de.gz
corpus_sizes="4000 200 200"
exp_dir=exp/multi30k
vocab_size_tgt=1000
vocab_size_src=800
train_args=configs/train/tiny_cpu_multi30k.args
methods="none pcgrad mgcm"
ngpus=0
n_average=3
beam=1
k_list="1 3 5 7"
segment_size=160
