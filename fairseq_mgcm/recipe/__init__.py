"""Pieces the recipe (scripts/run.sh) calls between fairseq and SimulEval runs.

Each module is one step: run.sh's options (``options``, ``checks``, ``configure``; whether a
training budget leaves stage 4 its epoch checkpoints: ``budget``), its runs
(``matrix``) and ``--jobs`` scheduling (``jobs``), averaging checkpoints, measuring a command's
peak memory, collecting results into a table (stage 7: ``report_stage``), and drawing the
BLEU-AL plot; stopping the recipe with all it started (``supervise``) and one training per run
folder (``run_lock``). Done markers are ``fairseq_mgcm.markers``.
"""
