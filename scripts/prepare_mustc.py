#!/usr/bin/env python
"""Prepare MuST-C v1.0, any pair (or a corpus in its layout), for fairseq speech translation.

Inputs: MUSTC_ROOT/en-xx/data/<split>/{wav/*.wav, txt/<split>.{yaml,en,xx}}, xx = --tgt-lang
(de es fr it nl pt ro ru; default de).
Outputs in OUT_DIR: config.yaml, <split>.tsv, fbank80_<split>.zip, gcmvn.npz,
spm_{tgt,src}.{model,txt}, simuleval/<split>/{wav/,source.txt,target.txt} for non-train splits
and simuleval/<split>-talks/ (their whole talks, for long-form evaluation: docs/longform.md).
Resumable: finished stages are re-used on a re-run. Bad input exits with code 2 and names the
file and line; nothing is written before all inputs have been checked. SIGINT / SIGTERM stop it
with one line and exit code 130 / 143, keeping finished stages and leaving no temporary file.

Usage:
  python scripts/prepare_mustc.py --mustc-root MUSTC_ROOT --out-dir OUT_DIR \
      [--tgt-lang de] [--splits train dev tst-COMMON] [--vocab-size-tgt 8000 \
      --vocab-size-src 5000] [--specaugment lb] [--jobs 2]
"""
import argparse
import re
import sys
from pathlib import Path

from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.interrupt import Interrupted, exit_on_signals
from fairseq_mgcm.data.mustc.prepare import DEFAULT_SPLITS, prepare


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mustc-root", type=Path, required=True,
                        help="MuST-C root (the folder holding en-xx/), or en-xx/ itself")
    parser.add_argument("--src-lang", default="en", choices=("en",),
                        help="source language (MuST-C is English speech)")
    parser.add_argument("--tgt-lang", default="de",
                        help="target language: reads MUSTC_ROOT/en-<tgt-lang>/ (MuST-C v1.0: "
                        "de es fr it nl pt ro ru)")
    parser.add_argument("--out-dir", type=Path, required=True, help="prepared data folder")
    parser.add_argument("--splits", nargs="+", default=list(DEFAULT_SPLITS))
    parser.add_argument("--vocab-size-tgt", type=int, default=8000,
                        help="target SentencePiece size (upper bound on small corpora)")
    parser.add_argument("--vocab-size-src", type=int, default=5000,
                        help="English SentencePiece size (upper bound on small corpora)")
    parser.add_argument("--jobs", type=int, default=1, help="feature extraction processes")
    parser.add_argument("--no-resample", action="store_true",
                        help="refuse wavs that are not 16 kHz instead of resampling them")
    parser.add_argument("--drop-empty", action="store_true",
                        help="skip segments with an empty transcript or translation (with a "
                        "warning) instead of stopping")
    parser.add_argument("--specaugment", choices=("lb", "ld", "sm", "ss"), default=None,
                        help="write fairseq's SpecAugment policy (lb: LibriSpeech basic, as "
                        "fairseq's MuST-C recipe; ld, sm, ss) for train splits; default off")
    parser.add_argument("--progress-every", type=int, default=1000,
                        help="print a progress line every N segments")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z]{2,3}", args.tgt_lang) or args.tgt_lang == args.src_lang:
        parser.error(f"--tgt-lang must be a lower-case language code other than "
                     f"{args.src_lang}, not {args.tgt_lang!r}")
    if args.jobs < 1 or args.vocab_size_tgt < 8 or args.vocab_size_src < 8:
        parser.error("--jobs must be >= 1 and vocabulary sizes >= 8")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with exit_on_signals():
            prepare(args.mustc_root, args.out_dir, tuple(args.splits), args.vocab_size_tgt,
                    args.vocab_size_src, args.jobs, resample=not args.no_resample,
                    drop_empty=args.drop_empty, src_lang=args.src_lang,
                    tgt_lang=args.tgt_lang, progress_every=args.progress_every,
                    specaugment=args.specaugment)
    except CorpusError as e:
        print(f"prepare_mustc.py: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"prepare_mustc.py: stopped by {e.signal_name}; finished stages are kept, run "
              f"the same command again to resume", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
