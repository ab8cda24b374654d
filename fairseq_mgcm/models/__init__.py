"""Models: the wait-k speech-to-text transformer with CTC and ASR heads (registered on import)."""

from fairseq_mgcm.models.config import WaitkS2TConfig
from fairseq_mgcm.models.decoder import WaitkTransformerDecoder
from fairseq_mgcm.models.encoder import EncoderStreamingState, WaitkS2TEncoder
from fairseq_mgcm.models.waitk_s2t_transformer import WaitkS2TTransformerModel

__all__ = [
    "EncoderStreamingState",
    "WaitkS2TConfig",
    "WaitkS2TEncoder",
    "WaitkS2TTransformerModel",
    "WaitkTransformerDecoder",
]
