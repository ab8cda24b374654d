"""The synthetic corpus: a grammar or parallel text, spoken by espeak-ng, in MuST-C layout.

``text_sources`` picks the sentences (``grammar`` or text files), ``speech_synthesis`` speaks
them, and ``corpus`` writes talks, yaml and text files. Nothing here imports ``data.mustc``.
"""
