"""One silent utterance through the model right after it loads, before any timed instance.

On CUDA the first forward of each kernel shape pays for lazy initialisation (cuBLAS handles,
kernel selection, the caching allocator's first blocks): tens to hundreds of ms that
SimulEval's computation-aware latency would charge to the first instance's first words alone.
Running the streaming encoder and two decoder steps once on silence pays it at load time.
"""
from __future__ import annotations

import torch
from fairseq.data import Dictionary
from torch import nn

from fairseq_mgcm.agents.decoding import GreedyDecoder
from fairseq_mgcm.agents.streaming_encoder import StreamingEncoder


@torch.inference_mode()
def warm_up(model: nn.Module, tgt_dict: Dictionary, num_mel_bins: int, n_frames: int = 200
            ) -> None:
    """Encode ``n_frames`` fbank frames of silence and predict two tokens (nothing is kept)."""
    encoder = StreamingEncoder(model.encoder)
    encoder.push(torch.zeros(n_frames, num_mel_bins), finished=True)
    states = encoder.states
    decoder = GreedyDecoder(model.decoder, tgt_dict)
    decoder.commit(decoder.predict(states, refresh_encoder=False))
    decoder.predict(states, refresh_encoder=False)
    if states.is_cuda:
        torch.cuda.synchronize(states.device)
