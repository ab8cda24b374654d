#!/usr/bin/env python
"""Evaluate a checkpoint with SimulEval over wait-k values and source segment sizes.

Every (k, segment size) runs in this one process with the model loaded once; each run writes
``<output-dir>/k<k>_seg<ms>/instances.log`` (with a ``.done`` marker of what produced it), and
``<output-dir>/results.tsv`` gets one row per run (BLEU, plain and computation-aware latency).
The logic and the full description live in ``fairseq_mgcm/agents/sweep.py``.

Usage:
    python scripts/simuleval_sweep.py --checkpoint exp/st/checkpoint_best.pt \\
        --data-dir data/en-de \\
        --split tst-COMMON --k 3 5 7 9 [--segment-size 320 640] --output-dir exp/st/simul \\
        [--device cuda --fp16] [--max-instances 100] [--force] [-- <extra agent/simuleval flags>]
"""
from fairseq_mgcm.agents.sweep import main

if __name__ == "__main__":
    main()
