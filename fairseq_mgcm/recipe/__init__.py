"""Pieces the recipe (scripts/run.sh) calls between fairseq and SimulEval runs.

Each module is one step: run.sh's options (``options``, ``checks``, ``configure``), its runs
(``matrix``) and ``--jobs`` scheduling (``jobs``), averaging checkpoints, measuring a command's
peak memory, collecting results into a table (stage 7: ``report_stage``), and drawing the
BLEU-AL plot. Done markers are ``fairseq_mgcm.markers``.
"""
