"""The preparation: manifests fairseq loads, features, CMVN, SentencePiece, SimulEval, resume."""
import shutil
import subprocess
import sys
import zipfile
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import soundfile as sf
from data_testing import mtimes, read_tsv, read_yaml, small_mustc, write_mustc
from fairseq.data import Dictionary, encoders
from fairseq.data.audio.audio_utils import get_features_or_waveform
from fairseq.data.audio.data_cfg import S2TDataConfig
from fairseq.data.audio.speech_to_text_dataset import SpeechToTextDatasetCreator
from fairseq_reference import prep_mustc_module

from fairseq_mgcm.data.mustc.prepare import prepare

REPO = Path(__file__).resolve().parents[2]
SPLITS = ("train", "dev", "tst-COMMON")


def _corpus(prepared: Path) -> Path:
    return prepared.parent / "corpus" / "en-de" / "data"


def test_outputs_exist(prepared_tiny):
    for name in ("config.yaml", "gcmvn.npz", "spm_tgt.model", "spm_tgt.txt", "spm_src.model",
                 "spm_src.txt"):
        assert (prepared_tiny / name).is_file(), name
    for split in SPLITS:
        assert (prepared_tiny / f"{split}.tsv").is_file()
        assert (prepared_tiny / f"fbank80_{split}.zip").is_file()


def _fairseq_segments(prepared: Path, split: str) -> list[tuple]:
    """fairseq's own reading of the corpus: (wav, start, samples, rate, en, de, speaker, id)."""
    return prep_mustc_module().MUSTC(str(prepared.parent / "corpus"), "de", split).data


def test_manifest_matches_yaml(prepared_tiny):
    for split, n in (("train", 60), ("dev", 10), ("tst-COMMON", 10)):
        rows = read_tsv(prepared_tiny / f"{split}.tsv")
        txt = _corpus(prepared_tiny) / split / "txt"
        entries = read_yaml(txt / f"{split}.yaml")
        assert len(rows) == len(entries) == n
        assert list(rows[0]) == ["id", "audio", "n_frames", "src_text", "tgt_text", "speaker"]
        # each segment keeps its own yaml line's texts and speaker ...
        lines = zip(entries, (txt / f"{split}.en").read_text().splitlines(),
                    (txt / f"{split}.de").read_text().splitlines())
        assert {(r["src_text"], r["tgt_text"], r["speaker"]) for r in rows} == {
            (en, de, e["speaker_id"]) for e, en, de in lines}
        # ... in fairseq's order, under fairseq's ids
        reference = _fairseq_segments(prepared_tiny, split)
        assert [(r["id"], r["src_text"], r["tgt_text"], r["speaker"]) for r in rows] == [
            (d[7], d[4], d[5], d[6]) for d in reference]
        assert len({r["id"] for r in rows}) == n
        for row, (_, _, samples, *_) in zip(rows, reference):
            # ~100 frames per second: 25 ms windows every 10 ms
            assert int(row["n_frames"]) == (samples - 400) // 160 + 1


def test_features_round_trip(prepared_tiny):
    rows = read_tsv(prepared_tiny / "dev.tsv")
    with zipfile.ZipFile(prepared_tiny / "fbank80_dev.zip") as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        for row in rows:
            path = f"{prepared_tiny}/{row['audio']}"
            feats = get_features_or_waveform(path)
            assert feats.dtype == np.float32 and feats.shape == (int(row["n_frames"]), 80)
            with zf.open(f"{row['id']}.npy") as f:
                np.testing.assert_array_equal(np.load(f), feats)
            assert np.isfinite(feats).all()


def test_features_are_kaldi_fbank_of_the_segment(prepared_tiny):
    import torch
    from torchaudio.compliance import kaldi

    row = read_tsv(prepared_tiny / "dev.tsv")[1]
    wav, start, samples, *_, seg_id = _fairseq_segments(prepared_tiny, "dev")[1]
    assert row["id"] == seg_id
    audio, _ = sf.read(wav, dtype="int16", start=start, frames=samples)
    expected = kaldi.fbank(torch.from_numpy(audio.astype(np.float32))[None], num_mel_bins=80,
                           sample_frequency=16000).numpy()
    np.testing.assert_allclose(get_features_or_waveform(f"{prepared_tiny}/{row['audio']}"),
                               expected, atol=1e-4)


def test_cmvn_stats_sane(prepared_tiny):
    stats = np.load(prepared_tiny / "gcmvn.npz")
    mean, std = stats["mean"], stats["std"]
    assert mean.shape == std.shape == (80,)
    assert np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0.01).all()
    frames = np.concatenate([get_features_or_waveform(f"{prepared_tiny}/{r['audio']}")
                             for r in read_tsv(prepared_tiny / "train.tsv")])
    np.testing.assert_allclose(mean, frames.mean(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(std, frames.std(0), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("side,column", [("tgt", "tgt_text"), ("src", "src_text")])
def test_sentencepiece_round_trips(prepared_tiny, side, column):
    sp = spm.SentencePieceProcessor(model_file=str(prepared_tiny / f"spm_{side}.model"))
    assert (sp.bos_id(), sp.pad_id(), sp.eos_id(), sp.unk_id()) == (0, 1, 2, 3)
    pieces = [line.split(" ")[0] for line in
              (prepared_tiny / f"spm_{side}.txt").read_text(encoding="utf-8").splitlines()]
    assert pieces == [sp.id_to_piece(i) for i in range(4, sp.get_piece_size())]
    for row in read_tsv(prepared_tiny / "dev.tsv"):
        encoded = sp.encode(row[column], out_type=str)
        assert sp.decode(encoded) == row[column]
        assert "<unk>" not in encoded


def test_fairseq_loads_the_dataset(prepared_tiny, monkeypatch):
    # Paths are relative to the data folder: plain fairseq reads audio and CMVN relative to the
    # working directory (our task resolves them against the data folder; see test_movable.py).
    monkeypatch.chdir(prepared_tiny)
    cfg = S2TDataConfig(prepared_tiny / "config.yaml")
    tgt_dict = Dictionary.load(str(prepared_tiny / cfg.vocab_filename))
    bpe = encoders.build_bpe(Namespace(**cfg.bpe_tokenizer))
    dataset = SpeechToTextDatasetCreator.from_tsv(
        str(prepared_tiny), cfg, "train", tgt_dict, None, bpe, is_train_split=True, epoch=1,
        seed=1)
    assert len(dataset) == 60
    item = dataset[3]
    assert item.source.shape[1] == 80
    assert abs(float(item.source.mean())) < 1.5  # global CMVN applied
    row = read_tsv(prepared_tiny / "train.tsv")[3]
    assert bpe.decode(tgt_dict.string(item.target)) == row["tgt_text"]
    batch = dataset.collater([dataset[i] for i in range(4)])
    assert batch["net_input"]["src_tokens"].shape[0] == 4
    assert cfg.config["global_cmvn"]["stats_npz_path"] == "gcmvn.npz"
    assert "audio_root" not in cfg.config
    assert Path(cfg.config["src_bpe_tokenizer"]["sentencepiece_model"]).name == "spm_src.model"


def test_simuleval_inputs(prepared_tiny):
    for split in ("dev", "tst-COMMON"):
        root = prepared_tiny / "simuleval" / split
        sources = (root / "source.txt").read_text().splitlines()
        targets = (root / "target.txt").read_text(encoding="utf-8").splitlines()
        rows = read_tsv(prepared_tiny / f"{split}.tsv")
        assert targets == [r["tgt_text"] for r in rows]
        assert [Path(s).stem for s in sources] == [r["id"] for r in rows]
        for source, row in zip(sources, rows):
            assert source == f"wav/{row['id']}.wav"  # relative to the list's folder
            info = sf.info(root / source)
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert int((info.frames - 400) // 160) + 1 == int(row["n_frames"])
    assert not (prepared_tiny / "simuleval" / "train").exists()


def test_rerun_reuses_everything(prepared_tiny):
    corpus = prepared_tiny.parent / "corpus"
    before = mtimes(prepared_tiny)
    prepare(corpus, prepared_tiny, vocab_size_tgt=256, vocab_size_src=256)
    assert mtimes(prepared_tiny) == before


def test_changed_input_redoes_only_its_split(tmp_path):
    corpus = small_mustc(tmp_path / "corpus")
    out = tmp_path / "data"
    prepare(corpus, out, splits=("train", "dev"), vocab_size_tgt=40, vocab_size_src=40)
    before = mtimes(out)
    de = corpus / "en-de" / "data" / "dev" / "txt" / "dev.de"
    de.write_text(de.read_text().replace("hallo", "servus"))
    prepare(corpus, out, splits=("train", "dev"), vocab_size_tgt=40, vocab_size_src=40)
    after = mtimes(out)
    for name in ("fbank80_train.zip", "train.tsv", "gcmvn.npz", "spm_tgt.model", "config.yaml"):
        assert after[name] == before[name], name
    assert after["dev.tsv"] != before["dev.tsv"]
    assert "servus" in (out / "dev.tsv").read_text()
    assert "servus" in (out / "simuleval" / "dev" / "target.txt").read_text()


def test_interrupted_stage_is_redone(tmp_path):
    corpus = small_mustc(tmp_path / "corpus")
    out = tmp_path / "data"
    prepare(corpus, out, splits=("train", "dev"), vocab_size_tgt=40, vocab_size_src=40)
    (out / "dev.tsv").unlink()  # as if stopped between the zip and the manifest
    prepare(corpus, out, splits=("train", "dev"), vocab_size_tgt=40, vocab_size_src=40)
    assert len(read_tsv(out / "dev.tsv")) == 6


def test_resampling_non_16k(tmp_path, capsys):
    corpus = small_mustc(tmp_path / "corpus", rate=22050, splits=("train",))
    out = prepare(corpus, tmp_path / "data", splits=("train",), vocab_size_tgt=40,
                  vocab_size_src=40)
    assert "22050 Hz; resampling" in capsys.readouterr().err
    row = read_tsv(out / "train.tsv")[0]
    assert int(row["n_frames"]) == 98  # 1.0 s at 16 kHz


def test_script_and_parallel_jobs(tmp_path):
    corpus = small_mustc(tmp_path / "corpus")
    serial = prepare(corpus, tmp_path / "serial", splits=("train", "dev"), vocab_size_tgt=40,
                     vocab_size_src=40)
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "prepare_mustc.py"), "--mustc-root",
         str(corpus / "en-de"), "--out-dir", str(tmp_path / "par"), "--splits", "train", "dev",
         "--vocab-size-tgt", "40", "--vocab-size-src", "40", "--jobs", "2"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for name in ("train.tsv", "dev.tsv", "fbank80_train.zip", "gcmvn.npz"):
        assert (serial / name).read_bytes() == (tmp_path / "par" / name).read_bytes(), name
    shutil.rmtree(tmp_path / "par")


def test_cmvn_over_every_train_split(tmp_path):
    corpus = small_mustc(tmp_path / "corpus", splits=("train", "dev"))
    talks = {f"ted_loud_{i}": (16000, 4.0) for i in (1, 2)}
    segments = [(f"ted_loud_{i}", 0.1 + 1.2 * j, 1.0, f"hello loud world {j}",
                 f"hallo laute welt {j}") for i in (1, 2) for j in range(3)]
    write_mustc(corpus, "train-loud", talks, segments, amplitude=0.8)
    out = prepare(corpus, tmp_path / "data", splits=("train", "train-loud", "dev"),
                  vocab_size_tgt=40, vocab_size_src=40)

    def frames(split):
        return np.concatenate([get_features_or_waveform(f"{out}/{r['audio']}")
                               for r in read_tsv(out / f"{split}.tsv")])

    both = np.concatenate([frames("train"), frames("train-loud")])
    stats = np.load(out / "gcmvn.npz")
    np.testing.assert_allclose(stats["mean"], both.mean(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(stats["std"], both.std(0), rtol=1e-3, atol=1e-3)
    assert np.abs(stats["mean"] - frames("train-loud").mean(0)).max() > 0.5  # not the last only
    before = mtimes(out)
    prepare(corpus, out, splits=("train", "train-loud", "dev"), vocab_size_tgt=40,
            vocab_size_src=40)
    assert mtimes(out) == before
