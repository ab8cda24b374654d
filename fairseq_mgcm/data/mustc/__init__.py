"""MuST-C preparation: read a release (or a corpus in its layout) and write what fairseq trains on.

``reader`` checks the yaml/text/wav triplets, ``features`` cuts segments and computes fbank,
``cmvn`` and ``vocab`` compute statistics and SentencePiece models, ``stages`` keeps done
markers, ``prepare`` drives them all; ``fairseq_import`` reads fairseq's own prepared data.
Nothing here imports ``data.synthetic``.
"""
