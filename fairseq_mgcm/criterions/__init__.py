"""Criterions: ``st_ctc_asr`` (registered on import)."""

from fairseq_mgcm.criterions.config import StCtcAsrConfig
from fairseq_mgcm.criterions.st_ctc_asr import StCtcAsrCriterion

__all__ = ["StCtcAsrConfig", "StCtcAsrCriterion"]
