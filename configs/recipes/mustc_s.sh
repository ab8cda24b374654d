# MuST-C v1.0 En-De, the paper-like model, one GPU, all four methods.
# Usage: scripts/run.sh --recipe configs/recipes/mustc_s.sh --mustc-root /data/MUSTC_v1.0
#        (8 GPUs: add --ngpus 8 --hardware-args configs/hardware/8gpu.args)
corpus=mustc
exp_dir=exp/mustc_s
model_args=configs/model/s.args
hardware_args=configs/hardware/1gpu.args
methods="none mgcm pcgrad discard"
ngpus=1
n_average=5
k_list="1 3 5 7 9 1000"
specaugment=lb                  # as fairseq's MuST-C recipe
