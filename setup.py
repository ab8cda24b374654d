"""fairseq-mgcm: simultaneous speech translation with modular gradient conflict mitigation.

Install with ``pip install -e .[test]``; load into fairseq with ``--user-dir fairseq_mgcm``.
"""
from pathlib import Path

from setuptools import find_packages, setup


def _requirements(name: str) -> list[str]:
    lines = (Path(__file__).parent / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="fairseq-mgcm",
    version="0.1.0",
    description="A fairseq plugin for simultaneous speech translation with MGCM "
    "(modular gradient conflict mitigation) for multi-task learning",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["fairseq_mgcm", "fairseq_mgcm.*"]),
    package_data={"fairseq_mgcm.live": ["web/*"]},  # the live demo's page
    python_requires=">=3.11",
    install_requires=_requirements("requirements.txt"),
    extras_require={"test": _requirements("requirements-test.txt")},
)
