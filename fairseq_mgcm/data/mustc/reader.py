"""Read and validate MuST-C v1.0 triplets (``<split>.yaml``, ``.en``, ``.de``) and their wavs.

Everything is checked before any output is written, so bad input fails in seconds with the
file and line to fix rather than hours into feature extraction. Audio itself is not loaded
here; only each wav's header is read (``soundfile.info``).
"""
import math
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import yaml

from fairseq_mgcm.data.audio import SAMPLE_RATE
from fairseq_mgcm.data.errors import CorpusError, where

try:  # the MuST-C train yaml has ~230k entries: the C loader is ~10x faster
    from yaml import CBaseLoader as _YamlBaseLoader
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import BaseLoader as _YamlBaseLoader
    from yaml import SafeLoader as _YamlLoader

END_TOLERANCE_S = 0.05  # segments may overrun their wav by this much (rounded offsets)
MIN_DURATION_S = 0.025  # one 25 ms fbank window
MIN_SAMPLES = 400  # the same window in samples at 16 kHz: fewer and torchaudio's fbank fails
_REQUIRED_KEYS = ("duration", "offset", "speaker_id", "wav")


@dataclass(frozen=True)
class Segment:
    id: str  # "<wav stem>_<i>", i counting the talk's segments in fairseq's order
    offset: float
    duration: float
    speaker: str
    src_text: str
    tgt_text: str
    yaml_line: int


@dataclass
class Talk:
    name: str  # wav file stem
    wav: Path
    first_line: int  # yaml line of the talk's first segment, for error messages
    segments: list[Segment] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    frames: int = 0
    n_entries: int = 0  # yaml entries seen, including dropped ones


@dataclass
class SplitData:
    name: str
    yaml_path: Path
    src_path: Path
    tgt_path: Path
    talks: list[Talk]

    @property
    def segments(self) -> list[Segment]:
        return [seg for talk in self.talks for seg in talk.segments]


_PAIR_NAME = re.compile(r"[a-z]{2,3}-[a-z]{2,3}")


def find_lang_dir(mustc_root: Path, src_lang: str = "en", tgt_lang: str = "de") -> Path:
    """Accept either the MuST-C root (containing ``en-xx/``) or ``en-xx/`` itself.

    A pair folder for another pair (``en-de/`` given with ``tgt_lang="fr"``) is refused rather
    than read with the wrong text files.
    """
    mustc_root = Path(mustc_root)
    pair = f"{src_lang}-{tgt_lang}"
    wanted = mustc_root / pair / "data"
    if wanted.is_dir():
        return mustc_root / pair
    if (mustc_root / "data").is_dir() and (mustc_root.name == pair
                                           or not _PAIR_NAME.fullmatch(mustc_root.name)):
        return mustc_root
    others = sorted(p.name for p in mustc_root.glob("*-*") if (p / "data").is_dir())
    if _PAIR_NAME.fullmatch(mustc_root.name) and (mustc_root / "data").is_dir():
        others = [mustc_root.name]
    hint = f"; found {', '.join(others)} (pass --tgt-lang to match)" if others else ""
    raise CorpusError(f"{mustc_root}: no {pair} folder for --src-lang {src_lang} --tgt-lang "
                      f"{tgt_lang} (looked for {wanted}){hint}")


def _read_text(path: Path) -> str:
    """The file decoded as UTF-8 without a byte order mark; a decode error names the line."""
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror})") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CorpusError(f"{where(path, line)}: not UTF-8 (byte {data[e.start]:#04x}: "
                          f"{e.reason}); convert the file with iconv") from e


def _read_text_lines(path: Path) -> list[str]:
    """Lines split at ``\\n`` only: a stray U+2028 or form feed inside a sentence is not a line
    break to the other two files of the triplet (``str.splitlines`` would make it one)."""
    lines = _read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


_FLOW_LINE = re.compile(r"- \{(.*)\}")
_FLOW_ITEM = re.compile(r"(\w+): ([\w.+\-/]+)")
_NUMERIC_KEYS = ("duration", "offset")


def _parse_flow_lines(text: str) -> tuple[list[dict], list[int], list[str]] | None:
    """Fast path for MuST-C's own format, one ``- {key: value, ...}`` per line of plain values.

    About 20x faster than a yaml parser on the 230k-line train yaml. Returns None as soon as a
    line is anything else (quotes, comments, block style), and the caller parses real yaml.
    Also returns each entry's offset as written (see ``_read_yaml``).
    """
    entries: list[dict] = []
    line_numbers: list[int] = []
    offset_texts: list[str] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _FLOW_LINE.fullmatch(line.strip())
        if match is None:
            return None
        entry = {}
        for item in match.group(1).split(", "):
            kv = _FLOW_ITEM.fullmatch(item.strip())
            if kv is None:
                return None
            key, value = kv.groups()
            if key in _NUMERIC_KEYS:
                try:
                    entry[key] = float(value)
                except ValueError:
                    return None
            else:
                entry[key] = value
            if key == "offset":
                offset_texts.append(value)
        if len(offset_texts) == len(entries):  # no offset on this line
            offset_texts.append("")
        entries.append(entry)
        line_numbers.append(line_no)
    return entries, line_numbers, offset_texts


def _read_yaml(path: Path) -> tuple[list, list[int], list[str]]:
    """The yaml entries, the line each one starts on, and each entry's offset *as written*.

    fairseq reads the yaml with ``yaml.BaseLoader``, which keeps every value a string, and sorts
    a talk's segments by that string; the text is kept so that we can number them the same way.
    """
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    text = _read_text(path)
    try:
        fast = _parse_flow_lines(text)
        if fast is not None:
            return fast
        entries = yaml.load(text, Loader=_YamlLoader)
        as_written = yaml.load(text, Loader=_YamlBaseLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", e)
        if isinstance(e, yaml.reader.ReaderError):  # a raw control character: no mark, and a
            line = text.count("\n", 0, e.position) + 1  # two-line message with a position
            problem = f"{e.reason}: {chr(e.character)!r}"
        raise CorpusError(f"{where(path, line)}: invalid yaml ({problem})") from e
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise CorpusError(f"{path}: expected a yaml list of segments")
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if line.lstrip().startswith("-")]
    if len(lines) != len(entries):  # not one entry per line: fall back to entry numbers
        lines = list(range(1, len(entries) + 1))
    offset_texts = [str(e.get("offset", "")) if isinstance(e, dict) else ""
                    for e in as_written or []]
    return entries, lines, offset_texts


def _check_counts(yaml_path: Path, n_yaml: int, texts: dict[Path, list[str]]) -> None:
    for path, lines in texts.items():
        if len(lines) != n_yaml:
            # Only the counts are known: a line missing at line 3 shows first where the shorter
            # file ends, so the message gives the range, not a line that may be wrong.
            raise CorpusError(
                f"{path} has {len(lines)} lines but {yaml_path} has {n_yaml} segments; they "
                f"must be line-aligned (a line is missing or extra somewhere in lines "
                f"1-{min(len(lines), n_yaml) + 1})"
            )


def _number(entry: dict, key: str, yaml_path: Path, line: int) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CorpusError(f"{where(yaml_path, line)}: '{key}' must be a number, got {value!r}")
    if not math.isfinite(value):  # nan passes every comparison below, inf overflows the cut
        raise CorpusError(f"{where(yaml_path, line)}: '{key}' must be a finite number, got "
                          f"{value!r}")
    return float(value)


def fairseq_order(offset_texts: list[str]) -> list[int]:
    """Positions of one talk's segments in the order fairseq numbers them.

    fairseq's ``prep_mustc_data.py`` sorts a talk's segments by their offset *string* (its yaml
    loader keeps strings; Python's sort is stable), so ``"101.5"`` comes before ``"12.3"``;
    segment ``i`` of that order gets the id ``<wav stem>_<i>``.
    """
    return sorted(range(len(offset_texts)), key=offset_texts.__getitem__)


@dataclass
class _Entry:
    """One checked yaml entry with its text, before the talk's segments are numbered."""

    line: int
    offset_text: str
    offset: float
    duration: float
    speaker: str
    src: str
    tgt: str
    empty_in: Path | None  # the text file whose line is empty, if any


_BREAKS_LINES = ("Cc", "Zl", "Zp")  # control characters and line/paragraph separators


def _check_entry(entry: object, line: int, yaml_path: Path) -> None:
    if not isinstance(entry, dict) or any(k not in entry for k in _REQUIRED_KEYS):
        raise CorpusError(f"{where(yaml_path, line)}: expected a mapping with keys "
                          f"{', '.join(_REQUIRED_KEYS)}, got {entry!r}")
    # These two go into the tab-separated manifest (speaker, and the wav stem in every id),
    # where a tab or newline would split a row; the texts have their whitespace normalised.
    for key in ("speaker_id", "wav"):
        value = str(entry[key])
        bad = [ch for ch in value if unicodedata.category(ch) in _BREAKS_LINES]
        if bad:
            raise CorpusError(f"{where(yaml_path, line)}: '{key}' {value!r} contains "
                              f"{bad[0]!r}, a control character or line break, which the tsv "
                              f"manifest cannot hold")


def read_split(
    lang_dir: Path, split: str, src_lang: str = "en", tgt_lang: str = "de",
    drop_empty: bool = False,
) -> SplitData:
    """Read and check one split's triplets; group segments by talk (in order of appearance).

    Each talk's segments are put in fairseq's order and numbered like fairseq does (see
    ``fairseq_order``), each keeping its own texts (the text files are aligned with the yaml's
    lines, not with the sorted order). Empty texts are checked in yaml order.
    """
    txt_dir = lang_dir / "data" / split / "txt"
    yaml_path = txt_dir / f"{split}.yaml"
    src_path, tgt_path = txt_dir / f"{split}.{src_lang}", txt_dir / f"{split}.{tgt_lang}"
    entries, lines, offset_texts = _read_yaml(yaml_path)
    src_lines, tgt_lines = _read_text_lines(src_path), _read_text_lines(tgt_path)
    _check_counts(yaml_path, len(entries), {src_path: src_lines, tgt_path: tgt_lines})
    if not entries:
        raise CorpusError(f"{yaml_path}: no segments")
    talks: dict[str, Talk] = {}
    talk_entries: dict[str, list[_Entry]] = {}
    by_stem: dict[str, Talk] = {}
    for entry, line, offset_text, src, tgt in zip(entries, lines, offset_texts, src_lines,
                                                  tgt_lines):
        _check_entry(entry, line, yaml_path)
        wav_name = str(entry["wav"])
        if wav_name not in talks:
            talk = Talk(Path(wav_name).stem, lang_dir / "data" / split / "wav" / wav_name, line)
            _check_unique_stem(talk, by_stem, yaml_path)
            talks[wav_name], talk_entries[wav_name] = talk, []
        src, tgt = " ".join(src.split()), " ".join(tgt.split())
        empty = [p for p, text in ((src_path, src), (tgt_path, tgt)) if not text]
        if empty and not drop_empty:
            raise CorpusError(f"{where(empty[0], line)}: empty text line (pass --drop-empty "
                              f"to skip such segments)")
        offset = duration = 0.0  # of a dropped entry: never used
        if not empty:
            offset = _number(entry, "offset", yaml_path, line)
            duration = _number(entry, "duration", yaml_path, line)
        if not empty and (offset < 0 or duration < MIN_DURATION_S):
            raise CorpusError(f"{where(yaml_path, line)}: bad segment (offset {offset}, "
                              f"duration {duration}; need offset >= 0, duration >= "
                              f"{MIN_DURATION_S} s)")
        talk_entries[wav_name].append(_Entry(line, offset_text, offset, duration,
                                             str(entry["speaker_id"]), src, tgt,
                                             empty[0] if empty else None))
    dropped = 0
    for wav_name, talk in talks.items():
        group = talk_entries[wav_name]
        talk.n_entries = len(group)
        # Every entry is numbered, so ids do not move when one is dropped (as in fairseq,
        # which filters its manifest after numbering).
        for index, position in enumerate(fairseq_order([e.offset_text for e in group])):
            e = group[position]
            if e.empty_in is not None:
                dropped += 1
                continue
            talk.segments.append(Segment(f"{talk.name}_{index}", e.offset, e.duration,
                                         e.speaker, e.src, e.tgt, e.line))
    if dropped:
        print(f"warning: {yaml_path}: dropped {dropped} segments with empty text",
              file=sys.stderr)
    split_data = SplitData(split, yaml_path, src_path, tgt_path,
                           [talk for talk in talks.values() if talk.segments])
    if not split_data.talks:
        raise CorpusError(f"{yaml_path}: no segments left after dropping empty texts")
    for talk in split_data.talks:
        _check_audio(talk, yaml_path)
    return split_data


def _check_unique_stem(talk: Talk, by_stem: dict[str, Talk], yaml_path: Path) -> None:
    """Segment ids are ``<wav stem>_<i>``: two wavs with one stem (``x.wav``, ``sub/x.wav``)
    would give duplicate ids, i.e. duplicate zip members and texts paired with the wrong audio."""
    other = by_stem.setdefault(talk.name, talk)
    if other is not talk:
        raise CorpusError(
            f"{where(yaml_path, talk.first_line)}: {talk.wav} has the same file stem "
            f"'{talk.name}' as {other.wav} ({where(yaml_path, other.first_line)}); segment ids "
            f"are <stem>_<i>, so they would collide: rename one of the wavs")


def segment_samples(offset: float, duration: float, rate: int) -> tuple[int, int]:
    """``(first sample, number of samples)`` of a segment, truncated exactly like fairseq."""
    return int(offset * rate), int(duration * rate)


def clamped_samples(seg: Segment, rate: int, frames: int) -> tuple[int, int]:
    """``(start, stop)`` of a segment in a wav of ``frames`` samples, cut at the wav's end."""
    start, length = segment_samples(seg.offset, seg.duration, rate)
    start = min(start, frames)
    return start, min(start + length, frames)


def _seconds(value: float) -> str:
    return f"{value:.3f}" if value < 1e9 else f"{value:.3g}"  # 1e300 in 4 characters, not 301


def _check_audio(talk: Talk, yaml_path: Path) -> None:
    """Read the wav header; refuse segments that end clearly past the end of the audio, and
    segments too short for one fbank window once cut at the wav's end."""
    if not talk.wav.is_file():
        raise CorpusError(f"{talk.wav}: wav file not found (referenced at "
                          f"{where(yaml_path, talk.first_line)})")
    try:
        info = sf.info(str(talk.wav))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise CorpusError(f"{talk.wav}: unreadable audio ({e}); referenced at "
                          f"{where(yaml_path, talk.first_line)}") from e
    talk.sample_rate, talk.channels, talk.frames = info.samplerate, info.channels, info.frames
    length = info.frames / info.samplerate
    for seg in talk.segments:
        end = seg.offset + seg.duration
        if end > length + END_TOLERANCE_S:
            raise CorpusError(
                f"{where(yaml_path, seg.yaml_line)}: segment {seg.id} ends at {_seconds(end)} s, "
                f"past the end of {talk.wav} ({length:.3f} s)"
            )
        start, stop = clamped_samples(seg, info.samplerate, info.frames)
        samples = -(-(stop - start) * SAMPLE_RATE // info.samplerate)  # after resampling
        if samples < MIN_SAMPLES:
            raise CorpusError(
                f"{where(yaml_path, seg.yaml_line)}: segment {seg.id} has {samples} samples at "
                f"{SAMPLE_RATE} Hz once cut at the end of {talk.wav} ({length:.3f} s); need at "
                f"least {MIN_SAMPLES} (one 25 ms fbank window)")
