"""Data, by concern (dependencies run one way: both sub-packages use the shared modules here):

- ``synthetic/``: the corpus maker (grammar or parallel text, spoken by espeak-ng);
- ``mustc/``: MuST-C preparation (features, CMVN, vocabularies, manifests, stages);
- ``multitask_dataset``: the training dataset (speech, translation and transcript);
- shared: ``audio`` (sample rate, resampler, wav writer), ``errors``, ``parallel``,
  ``progress``. Atomic writes go through ``fairseq_mgcm.atomic_files``.

Quick use from tests and recipes::

    from fairseq_mgcm.data.synthetic.corpus import make_corpus
    from fairseq_mgcm.data.mustc.prepare import prepare
    prepare(make_corpus("/tmp/corpus", n_train=60, n_dev=10, n_test=10), "/tmp/data")
"""
