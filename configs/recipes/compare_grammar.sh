# Method comparison on the demo's grammar corpus with the paper's task set: ST primary with
# SimulASR, SimulMT and CTC auxiliaries; none / PCGrad / MGCM, three seeds each, significance
# tests in results.md (docs/comparison.md). About 60 minutes on 2 CPU cores.
# Usage: scripts/run.sh --recipe configs/recipes/compare_grammar.sh
source configs/recipes/demo.sh
exp_dir=exp/compare_grammar
overlays=configs/overlays/mt.args
methods="none pcgrad mgcm"
seeds="1 2 3"
