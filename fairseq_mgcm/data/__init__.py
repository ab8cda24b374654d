"""Data: the corpus maker (espeak-ng), MuST-C preparation, and the multitask dataset.

Quick use from tests and recipes::

    from fairseq_mgcm.data.corpus import make_corpus
    from fairseq_mgcm.data.prepare import prepare
    prepare(make_corpus("/tmp/corpus", n_train=60, n_dev=10, n_test=10), "/tmp/data")
"""
