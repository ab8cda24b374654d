"""Long-form evaluation: whole talks streamed through the agent, scored against their sentences.

A talk's hypothesis is one stream of words with delays; the references are the talk's
sentences with their times. ``talks`` reads the talk lists that data preparation writes,
``instances`` the streams SimulEval logged, ``resegment`` cuts each stream into one hypothesis
per reference sentence (mWER alignment, ``mweralign``), ``quality`` and ``stream_laal`` score
the cut streams (BLEU, chrF; StreamLAAL and its computation-aware variant), ``scoring`` does
all of it for one run, ``stage`` runs the recipe's long-form sweep and ``report`` draws its
table and plot (docs/longform.md). Nothing here imports fairseq or SimulEval at import time;
``stage`` loads the SimulEval sweep when it runs.
"""
