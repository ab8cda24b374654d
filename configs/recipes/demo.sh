# The CPU demo: make a corpus from the built-in grammar, train MGCM, evaluate at a few k.
# Usage: scripts/run.sh --recipe configs/recipes/demo.sh      (scripts/demo.sh does this)
corpus=builtin
corpus_sizes="2000 100 100"
exp_dir=exp/demo
vocab_size_tgt=300
vocab_size_src=200
model_args=configs/model/tiny.args
hardware_args=configs/hardware/cpu.args
train_budget="--max-epoch 12"
methods="mgcm"
ngpus=0
n_average=3
beam=1
k_list="1 3 5 7"
