"""Every MuST-C v1.0 pair: ``--tgt-lang xx`` through the corpus maker and the preparation, and a
few training updates on a non-German pair (English->French)."""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from data_testing import read_tsv, small_mustc

from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.mustc.prepare import prepare

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

_NUMBERS = (("one", "un"), ("two", "deux"), ("three", "trois"), ("four", "quatre"),
            ("five", "cinq"), ("six", "six"), ("seven", "sept"), ("eight", "huit"),
            ("nine", "neuf"), ("ten", "dix"), ("eleven", "onze"), ("twelve", "douze"))
_TEMPLATES = (("i see {} cats", "je vois {} chats"), ("we have {} books", "nous avons {} livres"),
              ("they want {} apples", "ils veulent {} pommes"))


def _write_french_text(folder: Path) -> tuple[Path, Path]:
    pairs = [(en.format(n_en), fr.format(n_fr)) for en, fr in _TEMPLATES
             for n_en, n_fr in _NUMBERS]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "text.en").write_text("".join(en + "\n" for en, _ in pairs))
    (folder / "text.fr").write_text("".join(fr + "\n" for _, fr in pairs))
    return folder / "text.en", folder / "text.fr"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *args],
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def french(tmp_path_factory) -> Path:
    """``<tmp>/corpus/en-fr`` made by ``make_corpus.py --tgt-lang fr``, prepared by
    ``prepare_mustc.py --tgt-lang fr`` into ``<tmp>/prepared``, then moved to ``<tmp>/data``
    (nothing is left at the old place: the folder must work from the new one)."""
    root = tmp_path_factory.mktemp("french")
    en, fr = _write_french_text(root / "text")
    made = _run("make_corpus.py", "--out", str(root / "corpus"), "--tgt-lang", "fr",
                "--src-text", str(en), "--tgt-text", str(fr), "--n-dev", "4", "--n-test", "4",
                "--utts-per-talk", "4")
    assert made.returncode == 0, made.stderr
    prepared = _run("prepare_mustc.py", "--mustc-root", str(root / "corpus"), "--tgt-lang",
                    "fr", "--out-dir", str(root / "prepared"), "--vocab-size-tgt", "60",
                    "--vocab-size-src", "60")
    assert prepared.returncode == 0, prepared.stderr
    shutil.move(root / "prepared", root / "data")
    return root


@pytest.fixture(scope="module")
def french_checkpoint(french) -> Path:
    """Three updates of fairseq-train on the moved English-French folder."""
    from fairseq_cli import train

    import fairseq_mgcm

    fairseq_mgcm.register()
    save_dir = french / "checkpoints"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(sys, "argv", [
            "fairseq-train", str(french / "data"),
            "--user-dir", str(Path(fairseq_mgcm.__file__).parent),
            "--task", "speech_to_text_multitask", "--num-workers", "0",
            "--arch", "waitk_s2t_transformer_tiny", "--criterion", "st_ctc_asr",
            "--waitk-lagging", "3", "--encoder-chunk-size", "4",
            "--train-subset", "train", "--valid-subset", "dev", "--optimizer", "adam",
            "--lr", "1e-3", "--max-tokens", "3000", "--max-update", "3",
            "--save-dir", str(save_dir), "--no-epoch-checkpoints", "--seed", "1",
            "--no-progress-bar",
        ])  # fmt: skip
        train.cli_main()
    return save_dir / "checkpoint_last.pt"


def test_corpus_maker_writes_the_pair_folder(french):
    txt = french / "corpus" / "en-fr" / "data" / "train" / "txt"
    assert sorted(p.name for p in txt.iterdir()) == ["train.en", "train.fr", "train.yaml"]
    assert not (french / "corpus" / "en-de").exists()
    assert "je vois" in (txt / "train.fr").read_text() or "nous avons" in (
        txt / "train.fr").read_text()


def test_prepared_french_manifest(french):
    txt = french / "corpus" / "en-fr" / "data" / "train" / "txt"
    rows = read_tsv(french / "data" / "train.tsv")
    pairs = set(zip(txt.joinpath("train.en").read_text().splitlines(),
                    txt.joinpath("train.fr").read_text().splitlines()))
    assert len(rows) == 28 and {(r["src_text"], r["tgt_text"]) for r in rows} == pairs


def test_a_few_updates_on_english_french_after_moving(french, french_checkpoint):
    assert not (french / "prepared").exists()
    state = torch.load(french_checkpoint, map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == 3
    assert state["cfg"]["task"]["data"] == str(french / "data")
    pieces = (french / "data" / "spm_tgt.txt").read_text(encoding="utf-8").split()
    assert "▁pommes" in pieces  # the target vocabulary is French


def test_simuleval_sweep_from_the_new_place(french, french_checkpoint, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "simuleval_sweep.py"),
         "--checkpoint", str(french_checkpoint), "--data-dir", str(french / "data"),
         "--k", "2", "--segment-size", "320", "--output-dir", str(tmp_path / "sweep"),
         "--max-instances", "2"], capture_output=True, text=True, env=env, cwd=tmp_path,
        check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "sweep" / "results.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [(r["k"], r["n_instances"]) for r in rows] == [("2", "2")]
    log = (tmp_path / "sweep" / "k2_seg320" / "instances.log").read_text().splitlines()
    read = [json.loads(line)["source"][0] for line in log]  # [path, then its sf.info lines]
    split_dir = french / "data" / "simuleval" / "tst-COMMON"
    listed = (split_dir / "source.txt").read_text().split()
    assert read == [str(split_dir / s) for s in listed[:2]]
    assert all(s.startswith("wav/") for s in listed)  # the list itself stays relative


def test_tgt_lang_without_its_folder_names_it(tmp_path):
    small_mustc(tmp_path / "corpus", splits=("train",))  # en-de only
    result = _run("prepare_mustc.py", "--mustc-root", str(tmp_path / "corpus"), "--tgt-lang",
                  "es", "--out-dir", str(tmp_path / "data"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(tmp_path / "corpus" / "en-es" / "data") in result.stderr
    assert "found en-de" in result.stderr
    assert not (tmp_path / "data").exists()


def test_pair_folder_of_another_pair_is_refused(tmp_path):
    small_mustc(tmp_path / "corpus", splits=("train",))
    with pytest.raises(CorpusError, match=r"no en-it folder.*found en-de"):
        prepare(tmp_path / "corpus" / "en-de", tmp_path / "data", splits=("train",),
                tgt_lang="it")


def test_grammar_is_german_only(tmp_path):
    result = _run("make_corpus.py", "--out", str(tmp_path / "corpus"), "--tgt-lang", "ro")
    assert result.returncode == 2 and "--src-text" in result.stderr
    assert not (tmp_path / "corpus").exists()
