"""fairseq's own MuST-C preparation (``examples/speech_to_text``, installed with fairseq-fixed),
run from the tests as a reference: its manifests, ids and offsets are what ours must meet."""
import contextlib
import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import fairseq
import pytest
import soundfile as sf

FAIRSEQ_DIR = Path(fairseq.__file__).parent  # holds examples/ in fairseq-fixed


@contextlib.contextmanager
def _examples_importable() -> Iterator[None]:
    """fairseq's example scripts import ``examples.speech_to_text...`` as a top-level package."""
    sys.path.insert(0, str(FAIRSEQ_DIR))
    try:
        yield
    finally:
        sys.path.remove(str(FAIRSEQ_DIR))


def prep_mustc_module() -> ModuleType:
    if not (FAIRSEQ_DIR / "examples" / "speech_to_text" / "prep_mustc_data.py").is_file():
        pytest.skip("this fairseq install has no examples/speech_to_text")
    with _examples_importable():
        return importlib.import_module("examples.speech_to_text.prep_mustc_data")


def fairseq_prepare(mustc_root: Path, vocab_size: int, lang: str = "de") -> Path:
    """What ``prep_mustc_data.py --task st`` and ``--task asr`` (global CMVN) write, made with
    fairseq's own functions: its ``MUSTC`` reader (ids, offsets), fbank, ``create_zip``,
    ``get_zip_manifest``, ``filter_manifest_df``, ``save_df_to_tsv``, ``gen_vocab`` and
    ``gen_config_yaml``. Only the script's driver loop is ours: its waveform conversion needs
    ``torchaudio.sox_effects``, which current torchaudio no longer has (our wavs are 16 kHz
    mono already, so it would do nothing)."""
    import numpy as np
    import pandas as pd
    from fairseq.data.audio.audio_utils import _get_torchaudio_fbank

    module = prep_mustc_module()
    utils = sys.modules["examples.speech_to_text.data_utils"]
    lang_dir = mustc_root / f"en-{lang}"
    feature_dir = lang_dir / "fbank80"
    feature_dir.mkdir(exist_ok=True)
    datasets = {split: module.MUSTC(str(mustc_root), lang, split) for split in module.MUSTC.SPLITS}
    train_features = []
    for split, dataset in datasets.items():
        # MUSTC.__getitem__ reads with soundfile, then converts (sox): read as it does, unconverted.
        for wav_path, offset, n_frames, rate, _, _, _, utt_id in dataset.data:
            waveform, _ = sf.read(wav_path, frames=n_frames, start=offset, dtype="float32",
                                  always_2d=True)
            features = _get_torchaudio_fbank(waveform.T * 2 ** 15, rate, 80)
            np.save(feature_dir / f"{utt_id}.npy", features)
            if split == "train":
                train_features.append(features)
    stats = utils.cal_gcmvn_stats(train_features)
    with open(lang_dir / "gcmvn.npz", "wb") as f:
        np.savez(f, mean=stats["mean"], std=stats["std"])
    zip_path = lang_dir / "fbank80.zip"
    utils.create_zip(feature_dir, zip_path)
    audio_paths, audio_lengths = utils.get_zip_manifest(zip_path)
    for task in ("st", "asr"):
        train_text = []
        for split, dataset in datasets.items():
            manifest = {c: [] for c in module.MANIFEST_COLUMNS}
            for *_, src, tgt, speaker, utt_id in dataset.data:
                manifest["id"].append(utt_id)
                manifest["audio"].append(audio_paths[utt_id])
                manifest["n_frames"].append(audio_lengths[utt_id])
                manifest["tgt_text"].append(src if task == "asr" else tgt)
                manifest["speaker"].append(speaker)
            if split.startswith("train"):
                train_text += manifest["tgt_text"]
            df = utils.filter_manifest_df(pd.DataFrame.from_dict(manifest),
                                          is_train_split=split.startswith("train"))
            utils.save_df_to_tsv(df, lang_dir / f"{split}_{task}.tsv")
        prefix = f"spm_unigram{vocab_size}_{task}"
        text_path = lang_dir / f"{task}_text.txt"
        text_path.write_text("".join(t + "\n" for t in train_text), encoding="utf-8")
        utils.gen_vocab(text_path, lang_dir / prefix, "unigram", vocab_size)
        utils.gen_config_yaml(lang_dir, spm_filename=prefix + ".model",
                              yaml_filename=f"config_{task}.yaml", specaugment_policy="lb",
                              cmvn_type="global", gcmvn_path=lang_dir / "gcmvn.npz")
    shutil.rmtree(feature_dir)
    return mustc_root
