"""fairseq's four SpecAugment policies (Park et al. 2019), as its MuST-C recipe writes them.

``lb`` is LibriSpeech basic (fairseq's MuST-C default), ``ld`` LibriSpeech double, ``sm``
Switchboard mild, ``ss`` Switchboard strong. The keys are the ones fairseq's
``SpecAugmentTransform`` reads. The preparation puts the transform under ``_train`` only, so
training applies it and evaluation never does.
"""

POLICIES: dict[str, dict[str, float]] = {
    "lb": {"time_warp_W": 0, "freq_mask_N": 1, "freq_mask_F": 27, "time_mask_N": 1,
           "time_mask_T": 100, "time_mask_p": 1.0},
    "ld": {"time_warp_W": 0, "freq_mask_N": 2, "freq_mask_F": 27, "time_mask_N": 2,
           "time_mask_T": 100, "time_mask_p": 1.0},
    "sm": {"time_warp_W": 0, "freq_mask_N": 2, "freq_mask_F": 15, "time_mask_N": 2,
           "time_mask_T": 70, "time_mask_p": 0.2},
    "ss": {"time_warp_W": 0, "freq_mask_N": 2, "freq_mask_F": 27, "time_mask_N": 2,
           "time_mask_T": 70, "time_mask_p": 0.2},
}


def feature_transforms(policy: str | None) -> dict[str, list[str]]:
    """The config's ``feature_transforms``: global CMVN always, SpecAugment on train splits."""
    if policy is None:
        return {"*": ["global_cmvn"]}
    return {"_train": ["global_cmvn", "specaugment"], "*": ["global_cmvn"]}
