#!/usr/bin/env python
"""Import MuST-C prepared by fairseq's prep_mustc_data.py (--task st and --task asr).

Inputs: FAIRSEQ_DIR (e.g. MUSTC_ROOT/en-de after fairseq's preparation) holding fbank80.zip,
<split>_st.tsv, <split>_asr.tsv, config_st.yaml, config_asr.yaml and the spm files they name.
Outputs in OUT_DIR: <split>.tsv (id audio n_frames src_text tgt_text speaker, joined by id; the
audio column points into FAIRSEQ_DIR/fbank80.zip, which is not copied), spm_{tgt,src}.{model,
txt}, gcmvn.npz (if fairseq used global CMVN) and config.yaml, all paths relative to OUT_DIR;
with --mustc-root, simuleval/<split>/ for the evaluation splits.
Bad input exits with code 2 and names the file, line or id; nothing is written before all
inputs have been checked. Re-running rewrites nothing that has not changed.

Usage:
  python scripts/import_fairseq_mustc.py --fairseq-dir MUSTC_ROOT/en-de --out-dir data/en-de \
      [--splits train dev tst-COMMON] [--st-config config_st.yaml --asr-config config_asr.yaml] \
      [--mustc-root MUSTC_ROOT --tgt-lang de]   # also SimulEval inputs from the raw wavs
"""
import argparse
import sys
from pathlib import Path

from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.mustc.fairseq_import import import_fairseq


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fairseq-dir", type=Path, required=True,
                        help="the en-xx folder fairseq's prep_mustc_data.py wrote")
    parser.add_argument("--out-dir", type=Path, required=True, help="prepared data folder")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="default: every split with a <split>_st.tsv")
    parser.add_argument("--mustc-root", type=Path, default=None,
                        help="the raw MuST-C release: also write simuleval/<split>/ (wavs, "
                        "source.txt, target.txt) for the evaluation splits")
    parser.add_argument("--tgt-lang", default="de", help="with --mustc-root: reads en-<tgt-lang>/")
    parser.add_argument("--st-config", default="config_st.yaml", help="in --fairseq-dir")
    parser.add_argument("--asr-config", default="config_asr.yaml", help="in --fairseq-dir")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import_fairseq(args.fairseq_dir, args.out_dir, args.splits, args.st_config,
                       args.asr_config, args.mustc_root, args.tgt_lang)
    except CorpusError as e:
        print(f"import_fairseq_mustc.py: error: {e}", file=sys.stderr)
        return 2
    print(f"imported {args.fairseq_dir} into {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
