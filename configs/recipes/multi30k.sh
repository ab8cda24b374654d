# Method comparison on a realistic corpus: Multi30k task 1 English (spoken by espeak-ng) ->
# German, with the official val set as dev and test 2016 (1,000 sentences) as tst-COMMON; the
# paper's task set (ST primary; SimulASR, SimulMT and CTC auxiliaries); none / PCGrad / MGCM,
# three seeds each, significance tests in results.md. The demo's model and machine.
# Usage: scripts/run.sh --recipe configs/recipes/multi30k.sh [--corpus-sizes "8000 1014 1000"]
source configs/recipes/demo.sh
corpus=text
src_text=../shared/data/multi30k/train.en.gz
tgt_text=../shared/data/multi30k/train.de.gz
dev_text="../shared/data/multi30k/val.en.gz ../shared/data/multi30k/val.de.gz"
test_text="../shared/data/multi30k/test_2016_flickr.en.gz ../shared/data/multi30k/test_2016_flickr.de.gz"
corpus_sizes="4000 1014 1000"
exp_dir=exp/multi30k
vocab_size_tgt=1000
vocab_size_src=800
train_budget="--max-epoch 20"
overlays=configs/overlays/mt.args
methods="none pcgrad mgcm"
seeds="1 2 3"
