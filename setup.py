"""fairseq-mgcm: simultaneous speech translation with modular gradient conflict mitigation.

Install with ``pip install -e .[test]``; load into fairseq with ``--user-dir fairseq_mgcm``.
"""
from setuptools import find_packages, setup

setup(
    name="fairseq-mgcm",
    version="0.1.0",
    description="A fairseq plugin for simultaneous speech translation with MGCM "
    "(modular gradient conflict mitigation) for multi-task learning",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["fairseq_mgcm", "fairseq_mgcm.*"]),
    python_requires=">=3.10",
    install_requires=[
        # fairseq 0.12.2 does not import on Python 3.11 (dataclass mutable defaults);
        # fairseq-fixed is the same code base with that fixed and installs as `fairseq`.
        "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
        "fairseq==0.12.2; python_version < '3.11'",
        "torch==2.11.*",
        "torchaudio==2.11.*",
        "sentencepiece",
        "simuleval==1.1.4",
        "sacrebleu>=2",
        "soundfile",
        "pyyaml",
        "matplotlib",
    ],
    extras_require={"test": ["pytest>=8"]},
)
