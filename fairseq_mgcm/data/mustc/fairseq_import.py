"""Read MuST-C as fairseq's ``examples/speech_to_text/prep_mustc_data.py`` prepared it.

fairseq writes, per language pair folder (e.g. ``MUSTC_ROOT/en-de``):

    fbank80.zip                         stored .npy features of every split
    <split>_st.tsv / <split>_asr.tsv    id audio n_frames tgt_text speaker (German / English)
    config_st.yaml / config_asr.yaml    S2TDataConfig (absolute spm and CMVN paths)
    spm_unigram*_st.{model,txt} / spm_unigram*_asr.{model,txt}

Our task needs one manifest with both texts (``src_text`` and ``tgt_text``) and the source
vocabulary under ``src_*`` keys. ``import_fairseq`` joins the two manifests by id and writes
our layout (docs/architecture.md section 2) into ``out_dir``: ``<split>.tsv`` whose ``audio``
column points into fairseq's ``fbank80.zip`` by a path relative to ``out_dir`` (the features are
not copied), copies of the SentencePiece models and CMVN statistics, and ``config.yaml`` with
paths relative to ``out_dir`` and fairseq's own feature transforms and SpecAugment settings;
given the raw release too, SimulEval inputs for the evaluation splits (our segment ids are
fairseq's). Everything is read and checked before anything is written.
"""
import csv
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from fairseq_mgcm.atomic_files import copy_file, write_text
from fairseq_mgcm.data.errors import CorpusError, where
from fairseq_mgcm.data.mustc.fairseq_zip import FeatureZips
from fairseq_mgcm.data.mustc.prepare import simuleval_stage
from fairseq_mgcm.data.mustc.reader import SplitData, find_lang_dir, read_split

MANIFEST_COLUMNS = ("id", "audio", "n_frames", "src_text", "tgt_text", "speaker")
_FAIRSEQ_COLUMNS = ("id", "audio", "n_frames", "tgt_text")
# Keys of fairseq's config copied as they are (everything else is rewritten or refused).
_COPIED_KEYS = ("input_channels", "input_feat_per_channel", "specaugment", "transforms",
                "feature_transforms")


@dataclass(frozen=True)
class FairseqSplit:
    name: str
    st_path: Path
    asr_path: Path
    rows: list[dict[str, str]]  # our manifest rows, in the ST manifest's order


def _read_fairseq_tsv(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of a manifest written by fairseq's ``save_df_to_tsv`` (pandas, ``QUOTE_NONE`` with
    ``\\`` as escape character), with their line numbers."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            columns = reader.fieldnames or []
            missing = [c for c in _FAIRSEQ_COLUMNS if c not in columns]
            if missing:
                raise CorpusError(f"{where(path, 1)}: missing column(s) {', '.join(missing)} "
                                  f"(a fairseq MuST-C manifest has {', '.join(columns) or 'none'})")
            return [(reader.line_num, _whole_row(row, columns, path, reader.line_num))
                    for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CorpusError(f"{path}: cannot read manifest ({e})") from e


def _whole_row(row: dict, columns: list[str], path: Path, line: int) -> dict[str, str]:
    """The row, if it has exactly the header's fields: a short row (a torn last line) would
    leave some columns empty, a long one would shift them."""
    extra = row.get(None) or []
    values = [v for k, v in row.items() if k is not None and v is not None]
    if extra or len(values) != len(columns):
        raise CorpusError(f"{where(path, line)}: {len(values) + len(extra)} fields, expected "
                          f"{len(columns)} ({', '.join(columns)})")
    if not row["id"]:
        raise CorpusError(f"{where(path, line)}: empty id")
    return dict(row)


def _n_frames(value: str, path: Path, line: int) -> int:
    if not re.fullmatch(r"[0-9]+", value) or int(value) == 0:
        raise CorpusError(f"{where(path, line)}: n_frames {value!r} is not a positive integer")
    return int(value)


def _by_id(path: Path, rows: list[tuple[int, dict[str, str]]]) -> dict[str, tuple[int, dict]]:
    table: dict[str, tuple[int, dict]] = {}
    for line, row in rows:
        if row["id"] in table:
            raise CorpusError(f"{where(path, line)}: id {row['id']} appears twice (first at "
                              f"line {table[row['id']][0]})")
        table[row["id"]] = (line, row)
    return table


def _join(name: str, st_path: Path, asr_path: Path) -> list[tuple[int, dict, dict]]:
    st_rows, asr_rows = _read_fairseq_tsv(st_path), _read_fairseq_tsv(asr_path)
    st, asr = _by_id(st_path, st_rows), _by_id(asr_path, asr_rows)
    for line, row in st_rows:
        if row["id"] not in asr:
            raise CorpusError(f"{where(st_path, line)}: id {row['id']} is not in {asr_path}")
    for line, row in asr_rows:
        if row["id"] not in st:
            raise CorpusError(f"{where(asr_path, line)}: id {row['id']} is not in {st_path}")
    joined = []
    for line, row in st_rows:
        asr_row = asr[row["id"]][1]
        if (asr_row["audio"], asr_row["n_frames"]) != (row["audio"], row["n_frames"]):
            raise CorpusError(f"{where(st_path, line)}: id {row['id']} has other features in "
                              f"{where(asr_path, asr[row['id']][0])}")
        joined.append((line, row, asr_row))
    return joined


def _clean(text: str) -> str:
    return " ".join(text.split())  # our manifests cannot hold tabs or newlines


def read_fairseq_split(
    fairseq_dir: Path, split: str, zips: FeatureZips
) -> FairseqSplit:
    """A split's two manifests joined, every row checked (fields, ``n_frames``, its features
    in the zip)."""
    st_path, asr_path = fairseq_dir / f"{split}_st.tsv", fairseq_dir / f"{split}_asr.tsv"
    if not st_path.is_file() or not asr_path.is_file():
        have, lacks = (st_path, asr_path) if st_path.is_file() else (asr_path, st_path)
        if not have.is_file():
            raise CorpusError(f"{fairseq_dir}: no fairseq manifests for split {split!r} "
                              f"(expected {st_path} and {asr_path})")
        raise CorpusError(f"{have} has no matching {lacks}: run fairseq's prep_mustc_data.py "
                          f"with --task {'asr' if lacks == asr_path else 'st'} too")
    rows = []
    for line, st_row, asr_row in _join(split, st_path, asr_path):
        n_frames = _n_frames(st_row["n_frames"], st_path, line)
        audio = zips.relative(st_row["audio"], st_row["id"], n_frames, where(st_path, line))
        rows.append({"id": st_row["id"], "audio": audio, "n_frames": str(n_frames),
                     "src_text": _clean(asr_row["tgt_text"]),
                     "tgt_text": _clean(st_row["tgt_text"]),
                     "speaker": _clean(st_row.get("speaker") or "")})
    return FairseqSplit(split, st_path, asr_path, rows)


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise CorpusError(f"{path}: fairseq data config not found")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise CorpusError(f"{path}: cannot read ({e})") from e
    if not isinstance(config, dict):
        raise CorpusError(f"{path}: expected a yaml mapping")
    for key, why in (("use_audio_input", "raw-audio configs have no fbank zip"),
                     ("prepend_tgt_lang_tag", "multilingual (joint) configs are not supported")):
        if config.get(key):
            raise CorpusError(f"{path}: '{key}: true' is not supported ({why})")
    return config


def _named_file(config: dict, keys: tuple[str, ...], config_path: Path, fairseq_dir: Path) -> Path:
    """The file a config entry names, resolved as fairseq does, or by name next to the config."""
    value: object = config
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value:
        raise CorpusError(f"{config_path}: no '{'.'.join(keys)}' entry")
    written = Path(value)
    candidates = [written if written.is_absolute() else fairseq_dir / written,
                  fairseq_dir / written.name]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise CorpusError(f"{config_path}: '{'.'.join(keys)}' names {value}, which is not "
                          f"there nor in {fairseq_dir}")
    return path


@dataclass(frozen=True)
class _Vocab:
    model: Path
    dictionary: Path


def _vocab(config: dict, config_path: Path, fairseq_dir: Path) -> _Vocab:
    bpe = config.get("bpe_tokenizer") or {}
    if bpe.get("bpe") != "sentencepiece":
        raise CorpusError(f"{config_path}: bpe_tokenizer must be sentencepiece, got {bpe!r}")
    return _Vocab(_named_file(config, ("bpe_tokenizer", "sentencepiece_model"), config_path,
                              fairseq_dir),
                  _named_file(config, ("vocab_filename",), config_path, fairseq_dir))


def _simuleval_data(lang_dir: Path, split: FairseqSplit, tgt_lang: str) -> SplitData:
    """The MuST-C segments of an imported split, exactly those of its manifest, in its order."""
    data = read_split(lang_dir, split.name, "en", tgt_lang, drop_empty=True)
    by_id = {seg.id: seg for seg in data.segments}
    for row in split.rows:
        if row["id"] not in by_id:
            raise CorpusError(f"{split.st_path}: id {row['id']} is not a segment of "
                              f"{data.yaml_path} (another MuST-C release or pair?)")
    wanted = {row["id"] for row in split.rows}
    for talk in data.talks:
        talk.segments = [seg for seg in talk.segments if seg.id in wanted]
    data.talks = [talk for talk in data.talks if talk.segments]
    if [seg.id for seg in data.segments] != [row["id"] for row in split.rows]:
        raise CorpusError(f"{split.st_path}: segments are not in fairseq's order of "
                          f"{data.yaml_path}")
    return data


def find_fairseq_splits(fairseq_dir: Path) -> list[str]:
    """Splits with an ST manifest, in fairseq's split order, then any others by name."""
    names = sorted(p.name[: -len("_st.tsv")] for p in fairseq_dir.glob("*_st.tsv"))
    known = [s for s in ("train", "dev", "tst-COMMON", "tst-HE") if s in names]
    return known + [s for s in names if s not in known]


def import_fairseq(
    fairseq_dir: Path | str, out_dir: Path | str, splits: tuple[str, ...] | None = None,
    st_config: str = "config_st.yaml", asr_config: str = "config_asr.yaml",
    mustc_root: Path | str | None = None, tgt_lang: str = "de",
) -> Path:
    """Write our layout into ``out_dir`` from fairseq-prepared MuST-C in ``fairseq_dir``.

    With ``mustc_root`` (the raw release), also write SimulEval inputs for every imported split
    not named ``train*``, cut from the release's wavs for exactly the manifest's segments.
    """
    fairseq_dir, out_dir = Path(fairseq_dir), Path(out_dir)
    if not fairseq_dir.is_dir():
        raise CorpusError(f"{fairseq_dir}: folder not found (the fairseq-prepared en-xx folder)")
    if out_dir.resolve() == fairseq_dir.resolve():
        raise CorpusError(f"{out_dir}: --out-dir must differ from the fairseq folder (our "
                          f"config.yaml and <split>.tsv must not replace files there)")
    splits = tuple(splits) if splits else tuple(find_fairseq_splits(fairseq_dir))
    if not splits:
        raise CorpusError(f"{fairseq_dir}: no <split>_st.tsv manifests")
    st_path, asr_path = fairseq_dir / st_config, fairseq_dir / asr_config
    st_cfg, asr_cfg = _read_config(st_path), _read_config(asr_path)
    tgt_vocab = _vocab(st_cfg, st_path, fairseq_dir)
    src_vocab = _vocab(asr_cfg, asr_path, fairseq_dir)
    cmvn = None
    if "global_cmvn" in st_cfg:
        cmvn = _named_file(st_cfg, ("global_cmvn", "stats_npz_path"), st_path, fairseq_dir)
    with FeatureZips(fairseq_dir, out_dir) as zips:
        data = [read_fairseq_split(fairseq_dir, split, zips) for split in splits]
    simuleval = []
    if mustc_root is not None:
        lang_dir = find_lang_dir(Path(mustc_root), "en", tgt_lang)
        simuleval = [_simuleval_data(lang_dir, split, tgt_lang) for split in data
                     if not split.name.startswith("train")]
    # Everything is checked: write.
    for name, vocab in (("spm_tgt", tgt_vocab), ("spm_src", src_vocab)):
        copy_file(vocab.model, out_dir / f"{name}.model")
        copy_file(vocab.dictionary, out_dir / f"{name}.txt")
    if cmvn is not None:
        copy_file(cmvn, out_dir / "gcmvn.npz")
    for split in data:
        lines = ["\t".join(MANIFEST_COLUMNS)]
        lines += ["\t".join(row[c] for c in MANIFEST_COLUMNS) for row in split.rows]
        write_text(out_dir / f"{split.name}.tsv", "".join(x + "\n" for x in lines),
                   if_changed=True)
    config = {key: st_cfg[key] for key in _COPIED_KEYS if key in st_cfg}
    config.update({
        "vocab_filename": "spm_tgt.txt",
        "bpe_tokenizer": {"bpe": "sentencepiece", "sentencepiece_model": "spm_tgt.model"},
        "src_vocab_filename": "spm_src.txt",
        "src_bpe_tokenizer": {"bpe": "sentencepiece", "sentencepiece_model": "spm_src.model"},
    })
    if cmvn is not None:
        config["global_cmvn"] = {"stats_npz_path": "gcmvn.npz"}
    write_text(out_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False), if_changed=True)
    for split_data in simuleval:
        simuleval_stage(split_data, out_dir)
    return out_dir
