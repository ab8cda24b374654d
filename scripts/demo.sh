#!/usr/bin/env bash
# The demo: on one CPU machine, make a speech corpus with espeak-ng from the built-in grammar,
# prepare it, train a wait-k model with MGCM, evaluate it offline and simultaneously at a few
# k, and print the BLEU/AL table and the plot's path (about 15 minutes on 2 cores).
#
# Usage: scripts/demo.sh [scripts/run.sh options]
#   e.g. scripts/demo.sh --corpus mustc --mustc-root /data/MUSTC_v1.0   (your own corpus)
#        scripts/demo.sh --methods "none mgcm"                            (compare methods)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec scripts/run.sh --recipe configs/recipes/demo.sh "$@"
