"""End to end through fairseq's own command lines: train, reload, decode."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch

TASKS = ("st", "ctc", "asr", "mt")


def _run_cli(monkeypatch: pytest.MonkeyPatch, main, argv: list[str]) -> None:
    monkeypatch.setattr(sys, "argv", argv)
    main()


def _epoch_stats(records: list[logging.LogRecord], tag: str) -> list[dict]:
    """End-of-epoch stats that fairseq's JSON progress bar logged under ``tag``."""
    stats = []
    for record in records:
        if record.name == tag and record.getMessage().startswith("{"):
            line = json.loads(record.getMessage())
            if f"{tag}_loss" in line:
                stats.append(line)
    return stats


@pytest.mark.slow
def test_train_lowers_every_loss_then_reload_and_generate(
    prepared_tiny: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from fairseq import checkpoint_utils
    from fairseq_cli import generate, train

    import fairseq_mgcm

    fairseq_mgcm.register()
    user_dir = str(Path(fairseq_mgcm.__file__).parent)
    save_dir = tmp_path / "checkpoints"
    caplog.set_level(logging.INFO)
    common = ["--user-dir", user_dir, "--task", "speech_to_text_multitask", "--num-workers", "0"]
    _run_cli(monkeypatch, train.cli_main, [
        "fairseq-train", str(prepared_tiny), *common,
        "--arch", "waitk_s2t_transformer_tiny", "--criterion", "st_ctc_asr",
        "--waitk-lagging", "3", "--encoder-chunk-size", "4",
        "--mt-text-encoder", "--mt-weight", "0.3", "--mt-waitk-lagging", "2",
        "--train-subset", "train", "--valid-subset", "dev",
        "--optimizer", "adam", "--lr", "2e-3", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", "10", "--max-tokens", "2000", "--max-epoch", "15",
        "--save-dir", str(save_dir), "--no-epoch-checkpoints", "--seed", "1",
        "--log-format", "json", "--log-interval", "100", "--no-progress-bar",
    ])  # fmt: skip
    stats = _epoch_stats(caplog.records, "train")
    assert len(stats) == 15
    first, last = stats[0], stats[-1]
    for task in TASKS:
        before, after = float(first[f"train_{task}_loss"]), float(last[f"train_{task}_loss"])
        assert after < 0.8 * before, f"{task} loss went {before} -> {after}"

    checkpoint = save_dir / "checkpoint_last.pt"
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    model = models[0]
    assert type(model).__name__ == "WaitkS2TTransformerModel"
    assert model.encoder.is_chunk_causal and model.decoder.waitk_lagging == 3
    assert model.mt_embed is not None and model.mt_schedule.lagging == 2
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, state["model"][name])

    results = tmp_path / "generate"
    _run_cli(monkeypatch, generate.cli_main, [
        "fairseq-generate", str(prepared_tiny), *common,
        "--path", str(checkpoint), "--gen-subset", "tst-COMMON",
        "--beam", "2", "--max-tokens", "4000", "--scoring", "sacrebleu",
        "--results-path", str(results),
    ])  # fmt: skip
    output = (results / "generate-tst-COMMON.txt").read_text()
    hypotheses = [line for line in output.splitlines() if line.startswith("D-")]
    assert len(hypotheses) == 10
    assert all(len(line.split("\t")) == 3 for line in hypotheses)
    assert "BLEU" in output.splitlines()[-1]


def _train_argv(data: Path, save_dir: Path, *extra: str) -> list[str]:
    import fairseq_mgcm

    return [
        "fairseq-train", str(data), "--user-dir", str(Path(fairseq_mgcm.__file__).parent),
        "--task", "speech_to_text_multitask", "--num-workers", "0",
        "--arch", "waitk_s2t_transformer_tiny", "--criterion", "st_ctc_asr",
        "--waitk-lagging", "3", "--train-subset", "train", "--valid-subset", "dev",
        "--optimizer", "adam", "--lr", "2e-3", "--max-tokens", "2000", "--max-update", "1",
        "--save-dir", str(save_dir), "--no-progress-bar", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--mt-weight", "0.3"], "--mt-weight 0.3 needs the model option --mt-text-encoder"),
        (
            ["--mt-weight", "0.3", "--mt-text-encoder", "--mt-waitk-lagging", "500"],
            r"--mt-waitk-lagging 500 .* longest transcript of split 'train'",
        ),
    ],
)
def test_bad_mt_options_fail_at_start_up_naming_the_flag(
    prepared_tiny: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    from fairseq_cli import train

    save_dir = tmp_path / "checkpoints"
    with pytest.raises(ValueError, match=message):
        _run_cli(monkeypatch, train.cli_main, _train_argv(prepared_tiny, save_dir, *extra))
    assert not list(save_dir.glob("*.pt"))  # refused before training wrote anything
