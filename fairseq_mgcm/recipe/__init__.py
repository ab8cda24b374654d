"""Pieces the recipe (scripts/run.sh) calls between fairseq and SimulEval runs.

Each module is one step: averaging checkpoints, measuring a command's peak memory,
collecting results into a table, and drawing the BLEU-AL plot.
"""
