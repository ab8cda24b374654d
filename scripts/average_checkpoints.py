#!/usr/bin/env python
"""Average the last N numbered checkpoints of a fairseq run into one checkpoint.

Inputs:  --save-dir DIR holding checkpoint<E>.pt (or checkpoint_<E>_<U>.pt with --by update)
Outputs: --output FILE, loadable by fairseq-generate and the SimulEval agent
Usage:   python scripts/average_checkpoints.py --save-dir exp/x/checkpoints --num 5 --output avg.pt
"""
import argparse
import sys

from fairseq_mgcm.recipe.averaging import average_checkpoints, last_checkpoints


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save-dir", required=True)
    parser.add_argument("--num", type=positive_int, default=5,
                        help="how many of the newest to average (>= 1)")
    parser.add_argument("--by", choices=["epoch", "update"], default="epoch")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()  # a bad flag value exits 2 naming the flag
    try:
        paths = last_checkpoints(args.save_dir, args.num, by=args.by)
        average_checkpoints(paths, args.output)
    except (FileNotFoundError, ValueError) as error:  # CheckpointError is a ValueError
        print(f"average_checkpoints: {error}", file=sys.stderr)
        return 2
    print(f"averaged {len(paths)} checkpoints ({paths[0].name} .. {paths[-1].name}) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
