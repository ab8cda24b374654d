"""Turn a MuST-C v1.0 release, any en-xx pair (or a corpus in its layout), into what fairseq
trains on.

Outputs in ``out_dir`` (see docs/architecture.md, section 2):

    config.yaml                    S2TDataConfig plus src_* keys
    <split>.tsv                    id audio n_frames src_text tgt_text speaker
    fbank80_<split>.zip            stored .npy features, float32 [n_frames, 80]
    gcmvn.npz                      global CMVN over every train* split
    spm_tgt.{model,txt}            target SentencePiece model + fairseq dictionary
    spm_src.{model,txt}            English (transcripts, for CTC/ASR)
    simuleval/<split>/             wav/<id>.wav, source.txt, target.txt (not for train splits)
    simuleval/<split>-talks/       whole talks: wav/<talk>.wav, source.txt, target.txt,
                                   sentences.{yaml,txt} (not for train splits; talk_lists.py)

Stages: validate all inputs of all splits first (nothing is written if anything is wrong),
then per split features + manifest, SentencePiece, SimulEval inputs, config. Each stage is
skipped on a re-run when its done-marker matches its inputs (see ``stages.py``).
"""
import hashlib
import os
import sys
import zipfile
from pathlib import Path

import yaml

from fairseq_mgcm.atomic_files import (
    atomic_open,
    atomic_path,
    remove_stale_temps,
    write_lines,
    write_text,
)
from fairseq_mgcm.data.audio import SAMPLE_RATE, downmix_warning, write_wav
from fairseq_mgcm.data.errors import CorpusError, where
from fairseq_mgcm.data.mustc import specaugment as specaugment_policies
from fairseq_mgcm.data.mustc import stages
from fairseq_mgcm.data.mustc.cmvn import CmvnAccumulator
from fairseq_mgcm.data.mustc.features import (
    N_MEL_BINS,
    read_segments,
    stored_entry_offsets,
    talk_features,
)
from fairseq_mgcm.data.mustc.reader import SplitData, find_lang_dir, read_split
from fairseq_mgcm.data.mustc.talk_lists import talks_stage
from fairseq_mgcm.data.mustc.vocab import train_sentencepiece
from fairseq_mgcm.data.parallel import ordered_map
from fairseq_mgcm.data.progress import Progress

DEFAULT_SPLITS = ("train", "dev", "tst-COMMON")
MANIFEST_COLUMNS = ("id", "audio", "n_frames", "src_text", "tgt_text", "speaker")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FEATURE_VERSION = 2  # bump when feature extraction changes, to invalidate old zips


def log(message: str) -> None:
    print(f"[prepare] {message}", file=sys.stderr, flush=True)


def is_train_split(split: str) -> bool:
    return split.startswith("train")


def _check_sample_rates(data: SplitData, resample: bool) -> None:
    for talk in data.talks:
        if talk.sample_rate != SAMPLE_RATE:
            if not resample:
                raise CorpusError(
                    f"{talk.wav}: sample rate {talk.sample_rate} Hz, expected {SAMPLE_RATE} "
                    f"(referenced at {where(data.yaml_path, talk.first_line)}; drop "
                    f"--no-resample to resample it)")
            log(f"warning: {talk.wav} is {talk.sample_rate} Hz; resampling its segments to "
                f"{SAMPLE_RATE} Hz")
        if talk.channels != 1:
            log(f"warning: {downmix_warning(talk.wav, talk.channels)}")


def _inputs_signature(data: SplitData) -> dict:
    """The split's yaml and texts by content (an edit that keeps size and mtime still counts),
    its wavs by size and mtime (hashing hundreds of GB of MuST-C audio would take longer than a
    run; replacing a wav in place with the same size and mtime goes unnoticed)."""
    return stages.file_signature([talk.wav for talk in data.talks],
                                 hash_contents=[data.yaml_path, data.src_path, data.tgt_path])


def _split_signature(data: SplitData) -> dict:
    return {"version": _FEATURE_VERSION, "n_mel_bins": N_MEL_BINS,
            "inputs": _inputs_signature(data)}


# ---------------------------------------------------------------------------------------------
# Stage: features + manifest (+ CMVN for train)
# ---------------------------------------------------------------------------------------------


def _write_features(data: SplitData, out_dir: Path, jobs: int, progress_every: int) -> None:
    zip_path = out_dir / f"fbank80_{data.name}.zip"
    tsv_path = out_dir / f"{data.name}.tsv"
    cmvn = CmvnAccumulator(N_MEL_BINS) if is_train_split(data.name) else None
    segments = data.segments
    n_frames: dict[str, int] = {}
    progress = Progress(f"features {data.name}", len(segments), every=progress_every)
    with atomic_path(zip_path) as tmp_zip:
        with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_STORED) as zf:
            for result in ordered_map(talk_features, data.talks, jobs):
                for seg_id, blob, frames in zip(result.ids, result.npy, result.n_frames):
                    # A fixed timestamp keeps the zip byte-identical across runs and --jobs.
                    zf.writestr(zipfile.ZipInfo(f"{seg_id}.npy", _ZIP_TIME), blob)
                    n_frames[seg_id] = frames
                if cmvn is not None:
                    cmvn.add(result.frame_sum, result.frame_sq_sum, sum(result.n_frames))
                progress.update(len(result.ids))
        offsets = stored_entry_offsets(tmp_zip)
        rows = []
        for seg in segments:
            offset, length = offsets[f"{seg.id}.npy"]
            rows.append([seg.id, f"{zip_path.name}:{offset}:{length}", str(n_frames[seg.id]),
                         seg.src_text, seg.tgt_text, seg.speaker])
    progress.close()
    with atomic_open(tsv_path) as f:
        f.write("\t".join(MANIFEST_COLUMNS) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    if cmvn is not None:
        cmvn.save_sums(_cmvn_sums_path(out_dir, data.name))


def _cmvn_sums_path(out_dir: Path, split: str) -> Path:
    return out_dir / ".work" / f"cmvn_{split}.npy"


def _features_stage(data: SplitData, out_dir: Path, jobs: int, progress_every: int) -> None:
    stage = f"features_{data.name}"
    outputs = [out_dir / f"fbank80_{data.name}.zip", out_dir / f"{data.name}.tsv"]
    if is_train_split(data.name):
        outputs.append(_cmvn_sums_path(out_dir, data.name))
    signature = _split_signature(data)
    if stages.is_done(out_dir, stage, signature, outputs):
        log(f"{data.name}: features and manifest up to date, re-using them")
        return
    stages.clear(out_dir, stage)
    log(f"{data.name}: computing features for {len(data.segments)} segments "
        f"in {len(data.talks)} talks")
    _write_features(data, out_dir, jobs, progress_every)
    stages.mark_done(out_dir, stage, signature)


# ---------------------------------------------------------------------------------------------
# Stage: global CMVN over every train split
# ---------------------------------------------------------------------------------------------


def _cmvn_stage(train_splits: list[str], out_dir: Path) -> None:
    sums = [_cmvn_sums_path(out_dir, split) for split in train_splits]
    outputs = [out_dir / "gcmvn.npz"]
    # Keyed by split, not path: a moved data folder re-uses its statistics.
    signature = {"sums": {split: hashlib.sha256(path.read_bytes()).hexdigest()
                          for split, path in zip(train_splits, sums)}}
    if stages.is_done(out_dir, "gcmvn", signature, outputs):
        log("gcmvn: up to date, re-using it")
        return
    stages.clear(out_dir, "gcmvn")
    log(f"gcmvn: global CMVN over {', '.join(train_splits)}")
    accumulator = CmvnAccumulator(N_MEL_BINS)
    for path in sums:
        accumulator.add_saved(path)
    accumulator.save(out_dir / "gcmvn.npz")
    stages.mark_done(out_dir, "gcmvn", signature)


# ---------------------------------------------------------------------------------------------
# Stage: SentencePiece
# ---------------------------------------------------------------------------------------------


def _spm_stage(name: str, texts: list[str], vocab_size: int, out_dir: Path) -> None:
    prefix = out_dir / name
    outputs = [out_dir / f"{name}.model", out_dir / f"{name}.txt"]
    signature = {"texts": stages.texts_signature(texts), "vocab_size": vocab_size,
                 "model_type": "unigram"}
    if stages.is_done(out_dir, name, signature, outputs):
        log(f"{name}: up to date, re-using it")
        return
    stages.clear(out_dir, name)
    log(f"{name}: training a unigram SentencePiece model (at most {vocab_size} pieces) "
        f"on {len(texts)} sentences")
    train_sentencepiece(texts, prefix, vocab_size)
    stages.mark_done(out_dir, name, signature)


# ---------------------------------------------------------------------------------------------
# Stage: SimulEval inputs
# ---------------------------------------------------------------------------------------------


def simuleval_stage(data: SplitData, out_dir: Path, progress_every: int = 1000) -> None:
    """One wav per segment, ``source.txt`` (paths relative to its folder, see
    ``source_list.py``) and ``target.txt``."""
    split_dir = out_dir / "simuleval" / data.name
    stage = f"simuleval_{data.name}"
    outputs = [split_dir / "source.txt", split_dir / "target.txt"]
    signature = {"version": _FEATURE_VERSION, "inputs": _inputs_signature(data),
                 "segments": stages.texts_signature([seg.id for seg in data.segments]),
                 "sources": "relative"}
    if stages.is_done(out_dir, stage, signature, outputs):
        log(f"{data.name}: SimulEval inputs up to date, re-using them")
        return
    stages.clear(out_dir, stage)
    sources, targets = [], []
    progress = Progress(f"simuleval {data.name}", len(data.segments), every=progress_every)
    for talk in data.talks:
        for seg, audio in zip(talk.segments, read_segments(talk)):
            wav_path = split_dir / "wav" / f"{seg.id}.wav"
            int16 = (audio * 32768.0).round().clip(-32768, 32767).astype("int16")
            write_wav(wav_path, int16, SAMPLE_RATE)
            sources.append(wav_path.relative_to(split_dir).as_posix())
            targets.append(seg.tgt_text)
            progress.update()
    progress.close()
    write_lines(split_dir / "target.txt", targets)
    write_lines(split_dir / "source.txt", sources)
    stages.mark_done(out_dir, stage, signature)


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


def _write_config(out_dir: Path, specaugment: str | None = None) -> None:
    """The data config, every path relative to its folder so that the folder can move.

    fairseq resolves the tokenizer and CMVN paths against the config's folder. It reads the
    manifests' ``audio`` against ``audio_root`` (here absent, i.e. the working directory); our
    task sets ``audio_root`` to the data folder, and a plain fairseq run from the data folder
    works too.
    """
    config = {
        "input_channels": 1,
        "input_feat_per_channel": N_MEL_BINS,
        "vocab_filename": "spm_tgt.txt",
        "bpe_tokenizer": {"bpe": "sentencepiece", "sentencepiece_model": "spm_tgt.model"},
        "src_vocab_filename": "spm_src.txt",
        "src_bpe_tokenizer": {"bpe": "sentencepiece", "sentencepiece_model": "spm_src.model"},
        "global_cmvn": {"stats_npz_path": "gcmvn.npz"},
        "feature_transforms": specaugment_policies.feature_transforms(specaugment),
    }
    if specaugment is not None:
        config["specaugment"] = dict(specaugment_policies.POLICIES[specaugment])
    write_text(out_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False), if_changed=True)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def _check_out_dir(out_dir: Path) -> None:
    """Refuse an ``--out-dir`` that is a file, lies below one, or cannot be written, before the
    (long) checks of the inputs rather than with a traceback after them."""
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == out_dir else f"lies below the file {existing}"
        raise CorpusError(f"{out_dir}: --out-dir {what}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CorpusError(f"{out_dir}: --out-dir cannot be written ({existing} is not writable)")


def _remove_stale_temps(out_dir: Path, splits: list[str]) -> None:
    """Temporary files of a run that was killed (SIGKILL, power loss): a feature zip's can be
    as large as the zip. A finished or interrupted (SIGINT, SIGTERM) run leaves none."""
    folders = [out_dir, out_dir / ".done", out_dir / ".work"]
    for split in splits:
        for name in (split, f"{split}-talks"):
            folders += [out_dir / "simuleval" / name, out_dir / "simuleval" / name / "wav"]
    stale = [p for folder in folders for p in remove_stale_temps(folder)]
    if stale:
        log(f"removed {len(stale)} temporary files left by an interrupted run "
            f"(e.g. {stale[0].name})")


def prepare(
    mustc_root: Path | str, out_dir: Path | str, splits: tuple[str, ...] = DEFAULT_SPLITS,
    vocab_size_tgt: int = 8000, vocab_size_src: int = 5000, jobs: int = 1,
    resample: bool = True, drop_empty: bool = False, src_lang: str = "en",
    tgt_lang: str = "de", progress_every: int = 1000, specaugment: str | None = None,
) -> Path:
    """Prepare ``splits`` of the MuST-C release at ``mustc_root`` into ``out_dir``.

    ``specaugment`` (``lb``, ``ld``, ``sm``, ``ss``; None: off) adds fairseq's SpecAugment
    policy for the train splits to config.yaml. Raises CorpusError (naming file and line) on
    bad input before writing anything.
    """
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    if specaugment is not None and specaugment not in specaugment_policies.POLICIES:
        raise CorpusError(f"--specaugment must be one of "
                          f"{', '.join(specaugment_policies.POLICIES)}, not {specaugment!r}")
    lang_dir = find_lang_dir(Path(mustc_root), src_lang, tgt_lang)
    if not splits:
        raise CorpusError("no splits to prepare")
    log(f"reading {', '.join(splits)} from {lang_dir}")
    datasets = [read_split(lang_dir, split, src_lang, tgt_lang, drop_empty) for split in splits]
    for data in datasets:
        _check_sample_rates(data, resample)
    train = [d for d in datasets if is_train_split(d.name)]
    if not train:
        missing = [p for p in ("spm_tgt.model", "spm_src.model", "gcmvn.npz")
                   if not (out_dir / p).is_file()]
        if missing:
            raise CorpusError(f"{out_dir}: {', '.join(missing)} missing; include a train split "
                              f"in --splits (they are computed from train)")
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out_dir, list(splits))
    for data in datasets:
        _features_stage(data, out_dir, jobs, progress_every)
    if train:
        _cmvn_stage([d.name for d in train], out_dir)
        segments = [seg for d in train for seg in d.segments]
        _spm_stage("spm_tgt", [s.tgt_text for s in segments], vocab_size_tgt, out_dir)
        _spm_stage("spm_src", [s.src_text for s in segments], vocab_size_src, out_dir)
    for data in datasets:
        if not is_train_split(data.name):
            simuleval_stage(data, out_dir, progress_every)
            talks_stage(data, out_dir, _inputs_signature(data), progress_every)
    _write_config(out_dir, specaugment)
    log(f"done: {out_dir}")
    return out_dir
