#!/usr/bin/env python
"""Make a speech translation corpus in MuST-C v1.0 layout, spoken by espeak-ng.

Inputs: nothing (the built-in English->German grammar, default) or two line-aligned text
files (--src-text English, --tgt-text in --tgt-lang, default de; .gz allowed).
Outputs: OUT/en-xx/data/{train,dev,tst-COMMON}/wav/<talk>.wav (16 kHz mono) and
OUT/en-xx/data/<split>/txt/<split>.{yaml,en,xx} (xx = --tgt-lang); OUT/en-xx/.work holds resume
records.
Re-running re-uses finished talks. Bad input exits with code 2 and names the file and line.

Usage:
  python scripts/make_corpus.py --out corpus [--n-train 4000 --n-dev 200 --n-test 200] [--jobs 2]
  python scripts/make_corpus.py --out corpus --src-text train.en.gz --tgt-text train.de.gz \
      --max-sentences 5000 [--split all|train|dev|tst-COMMON]
  python scripts/make_corpus.py --out corpus --tgt-lang fr --src-text train.en --tgt-text train.fr
  python scripts/make_corpus.py --out corpus --src-text train.en.gz --tgt-text train.de.gz \
      --dev-text val.en.gz val.de.gz --test-text test_2016_flickr.en.gz test_2016_flickr.de.gz \
      --n-train 29000 --n-dev 1014 --n-test 1000      # official held-out sets, not carved out
"""
import argparse
import re
import sys
from pathlib import Path

from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.synthetic.corpus import write_corpus
from fairseq_mgcm.data.synthetic.text_sources import (
    SPLITS,
    grammar_splits,
    read_parallel_text,
    text_splits,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="corpus root (MuST-C root)")
    parser.add_argument("--src-text", type=Path, help="English text, one sentence per line")
    parser.add_argument("--tgt-text", type=Path,
                        help="target text (--tgt-lang), line-aligned with --src-text")
    parser.add_argument("--tgt-lang", default="de",
                        help="target language code: writes OUT/en-<code>/ with <split>.<code> "
                        "texts (MuST-C v1.0: de es fr it nl pt ro ru); the built-in grammar is "
                        "German only")
    parser.add_argument("--max-sentences", type=int, help="read at most this many lines")
    parser.add_argument("--split", default="all", choices=("all",) + SPLITS,
                        help="with text files: 'all' splits them into train/dev/tst-COMMON; a "
                        "split name puts every line into that split")
    parser.add_argument("--dev-text", type=Path, nargs=2, metavar=("SRC", "TGT"),
                        help="with text files: dev from these (its first --n-dev lines) instead "
                        "of held out from --src-text/--tgt-text")
    parser.add_argument("--test-text", type=Path, nargs=2, metavar=("SRC", "TGT"),
                        help="with text files: tst-COMMON from these (first --n-test lines)")
    parser.add_argument("--n-train", type=int, default=4000,
                        help="train sentences (grammar; text with --dev-text and --test-text)")
    parser.add_argument("--n-dev", type=int, default=200, help="dev sentences")
    parser.add_argument("--n-test", type=int, default=200, help="tst-COMMON sentences")
    parser.add_argument("--utts-per-talk", type=int, default=10,
                        help="sentences spoken in one talk wav")
    parser.add_argument("--speakers", type=int, default=0,
                        help="draw talks' speakers from this many fixed espeak-ng speakers "
                        "(0: a random accent, variant and speed per talk)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="synthesis processes")
    parser.add_argument("--progress-every", type=int, default=500,
                        help="print a progress line every N utterances")
    args = parser.parse_args(argv)
    if (args.src_text is None) != (args.tgt_text is None):
        parser.error("--src-text and --tgt-text go together")
    if args.src_text is None and (args.dev_text or args.test_text):
        parser.error("--dev-text and --test-text need --src-text and --tgt-text")
    if (args.dev_text or args.test_text) and args.split != "all":
        parser.error("--dev-text/--test-text make every split at once; leave out --split")
    if not re.fullmatch(r"[a-z]{2,3}", args.tgt_lang) or args.tgt_lang == "en":
        parser.error(f"--tgt-lang must be a lower-case language code other than en, not "
                     f"{args.tgt_lang!r}")
    if args.src_text is None and args.tgt_lang != "de":
        parser.error(f"the built-in grammar is English-German; give --src-text and --tgt-text "
                     f"for --tgt-lang {args.tgt_lang}")
    for flag in ("n_train", "n_dev", "n_test", "speakers", "utts_per_talk", "jobs",
                 "progress_every"):
        if getattr(args, flag) < (1 if flag in ("utts_per_talk", "jobs", "progress_every") else 0):
            parser.error(f"--{flag.replace('_', '-')} is out of range: {getattr(args, flag)}")
    return args


def held_out_from_files(args: argparse.Namespace) -> dict[str, list]:
    """Dev and/or tst-COMMON read from their own files (e.g. a corpus's official sets), and
    only what is not given held out from the training text (then at most --n-train pairs)."""
    n_dev = 0 if args.dev_text else args.n_dev
    n_test = 0 if args.test_text else args.n_test
    pairs = read_parallel_text(args.src_text, args.tgt_text, args.max_sentences)
    splits = text_splits(pairs, "all", n_dev, n_test, args.seed)
    splits["train"] = splits["train"][:args.n_train]
    if args.dev_text:
        splits["dev"] = read_parallel_text(*args.dev_text, args.n_dev or None)
    if args.test_text:
        splits["tst-COMMON"] = read_parallel_text(*args.test_text, args.n_test or None)
    return splits


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.src_text is None:
            if args.split != "all":
                splits = {args.split: grammar_splits(args.n_train, args.n_dev, args.n_test,
                                                     args.seed)[args.split]}
            else:
                splits = grammar_splits(args.n_train, args.n_dev, args.n_test, args.seed)
        elif args.dev_text or args.test_text:
            splits = held_out_from_files(args)
        else:
            pairs = read_parallel_text(args.src_text, args.tgt_text, args.max_sentences)
            splits = text_splits(pairs, args.split, args.n_dev, args.n_test, args.seed)
        splits = {name: pairs for name, pairs in splits.items() if pairs}
        write_corpus(args.out, splits, args.utts_per_talk, args.seed, args.jobs,
                     args.progress_every, args.speakers, args.tgt_lang)
    except CorpusError as e:
        print(f"make_corpus.py: error: {e}", file=sys.stderr)
        return 2
    print(f"corpus written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
