# Method comparison on a realistic corpus: Multi30k task 1 English (spoken by espeak-ng) ->
# German, with the official val set as dev and test 2016 (1,000 sentences) as tst-COMMON; the
# paper's task set (ST primary; SimulASR, SimulMT and CTC auxiliaries); none / PCGrad / MGCM,
# three seeds each, significance tests in results.md. The demo's model, on 2 CPU cores.
# Budget (docs/comparison.md): one calibrating `none` run's dev curve flattens after ~7 epochs of
# 4,000 utterances; 9 trainings of 7 epochs, two side by side on one thread each, and their
# evaluations (offline, k = 3 and 7 on the 1,000 test sentences) fit in about 90 minutes.
# Usage: scripts/run.sh --recipe configs/recipes/multi30k.sh
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
train_budget="--max-epoch 7"
k_list="3 7"
jobs=2
overlays=configs/overlays/mt.args
methods="none pcgrad mgcm"
seeds="1 2 3"
