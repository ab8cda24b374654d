"""Tasks: ``speech_to_text_multitask`` (registered on import)."""

from fairseq_mgcm.tasks.config import SpeechToTextMultitaskConfig
from fairseq_mgcm.tasks.speech_to_text_multitask import SpeechToTextMultitaskTask

__all__ = ["SpeechToTextMultitaskConfig", "SpeechToTextMultitaskTask"]
