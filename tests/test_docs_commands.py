"""The ```bash blocks of docs/agent.md, docs/data.md and docs/install.md, run as written.

Each command runs through bash in a scratch folder laid out like the checkout (its scripts/,
configs/ and requirements files linked in), so the docs' relative paths
(``scripts/...``, ``exp/...``, ``data/...``) mean what they say and every output stays out of the
repository. Only documented placeholders change: ``$DATA`` and ``$MUSTC_ROOT`` are set as the
shell variables they are; ``/path/to/MUSTC_v1.0`` and ``/tmp/lock-venv`` are replaced; and where a
command would take minutes, a smaller size or budget is added. Each change is spelled out where
the test makes it. Commands that cannot run here are listed in EXCEPTIONS with the reason, and
checked without running them. docs/comparison.md is not covered here (being rewritten).
"""
from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from docs_commands import command_line, commands
from recipe_runs import _env, run_recipe

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
sys.path[:0] = [str(TESTS / "agents"), str(TESTS / "data")]
from data_testing import read_tsv, varied_mustc  # noqa: E402
from fairseq_reference import FAIRSEQ_DIR, fairseq_prepare, prep_mustc_module  # noqa: E402

AGENT = ROOT / "docs" / "agent.md"
DATA = ROOT / "docs" / "data.md"
INSTALL = ROOT / "docs" / "install.md"

# Each docs command, by a prefix naming exactly one command of its doc.
SOURCE_LIST = "python -m fairseq_mgcm.data.mustc.source_list $DATA/simuleval/tst-COMMON/source.txt"
SIMULEVAL = "simuleval --agent-class fairseq_mgcm.agents.waitk_agent.WaitkAgent"
SWEEP = ("python scripts/simuleval_sweep.py --checkpoint exp/mustc_s/none/checkpoint_avg.pt "
         "--data-dir $DATA --split tst-COMMON --k")
SWEEP_POLICIES = SWEEP.removesuffix("--k") + "--policies"
SIMULSTREAM = "MGCM_CHECKPOINT=exp/mustc_s/none/checkpoint_avg.pt python -m simulstream.inference"
SERVE = "scripts/serve.sh exp/mustc_s/none/checkpoint_avg.pt"  # tests/live/test_browser_demo.py
MAKE_DE = "python scripts/make_corpus.py --out corpus --n-train"
PREPARE_DE = "python scripts/prepare_mustc.py --mustc-root corpus --out-dir data "
RELEASE_DE = "python scripts/prepare_mustc.py --mustc-root /path/to/MUSTC_v1.0 --out-dir"
RELEASE_FR = "python scripts/prepare_mustc.py --mustc-root /path/to/MUSTC_v1.0 --tgt-lang fr"
MAKE_FR = "python scripts/make_corpus.py --out corpus --tgt-lang fr"
PREPARE_FR = "python scripts/prepare_mustc.py --mustc-root corpus --tgt-lang fr"
FAIRSEQ_ST = "python examples/speech_to_text/prep_mustc_data.py --data-root $MUSTC_ROOT --task st"
FAIRSEQ_ASR = "python examples/speech_to_text/prep_mustc_data.py --data-root $MUSTC_ROOT --task asr"
IMPORT = "python scripts/import_fairseq_mustc.py"
RECIPE = "scripts/run.sh --recipe configs/recipes/mustc_s.sh --mustc-root $MUSTC_ROOT --data-dir"
VENV = "python3 -m venv /tmp/lock-venv"
PIN_FIRST = "/tmp/lock-venv/bin/pip install torch=="
PIN_REST = "/tmp/lock-venv/bin/pip install --no-build-isolation -r requirements.txt"
FREEZE = "/tmp/lock-venv/bin/pip check && /tmp/lock-venv/bin/pip freeze --all"

RUN = {
    AGENT: (SOURCE_LIST, SIMULEVAL, SWEEP, SWEEP_POLICIES, SIMULSTREAM, SERVE),
    DATA: (MAKE_DE, PREPARE_DE, RELEASE_DE, RELEASE_FR, MAKE_FR, PREPARE_FR, IMPORT, RECIPE),
    INSTALL: (FREEZE,),
}
_SOX = ("fairseq's own script (run in a fairseq checkout) converts every waveform with "
        "torchaudio.sox_effects, which the locked torchaudio 2.11 lacks; tests/data/"
        "fairseq_reference.py runs the same steps through fairseq's own functions instead")
_DOWNLOAD = ("installs into a new venv from the package index: ~5 GB of torch/CUDA wheels and a "
             "source build of fairseq-fixed; here it runs with --dry-run --no-index against the "
             "environment made from the lock, which must already satisfy it")
_EMPTY_VENV = ("makes an empty venv: nothing of the project to check; the re-lock's steps after it "
               "are checked against the environment made from the lock")
EXCEPTIONS = {
    DATA: {FAIRSEQ_ST: _SOX, FAIRSEQ_ASR: _SOX},
    INSTALL: {VENV: _EMPTY_VENV, PIN_FIRST: _DOWNLOAD, PIN_REST: _DOWNLOAD},
}
LINKED = ("scripts", "configs", "requirements.txt", "requirements-test.txt", "requirements.lock")


def replaced(command: str, replacements: dict[str, str]) -> str:
    """``command`` with each placeholder replaced; a placeholder no longer there is an error."""
    for old, new in replacements.items():
        assert old in command, f"{old!r} is no longer in the docs command: {command}"
        command = command.replace(old, new)
    return command


def checkout(folder: Path) -> Path:
    """``folder`` laid out like the checkout, for commands that name its files relatively."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name)
    return folder


def shell(command: str, cwd: Path, timeout: int = 900, **variables: str
          ) -> subprocess.CompletedProcess:
    """Run ``command`` as a user types it: bash, in ``cwd``, with the shell ``variables`` set."""
    run = subprocess.run(["bash", "-c", command], cwd=cwd, env={**_env(), **variables},
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"{command}\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    return run


# --------------------------------------------------------------------------------------------
# docs/agent.md
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_agent_doc_simuleval_run_and_sweep(prepared_tiny, trained_tiny, tmp_path):
    tiny_checkpoint = trained_tiny["chunk-causal"]  # 120 updates, r = 4
    work = checkout(tmp_path)
    # exp/mustc_s/none/checkpoint_avg.pt is the recipe's averaged model; here the tiny one.
    (work / "exp" / "mustc_s" / "none").mkdir(parents=True)
    (work / "exp" / "mustc_s" / "none" / "checkpoint_avg.pt").symlink_to(tiny_checkpoint)
    n_test = len((prepared_tiny / "simuleval" / "tst-COMMON" / "target.txt").read_text()
                 .splitlines())

    shell(command_line(AGENT, SOURCE_LIST), work, DATA=str(prepared_tiny))
    assert (work / "source.txt").read_text().splitlines()[0].startswith(str(prepared_tiny))
    shell(command_line(AGENT, SIMULEVAL), work, DATA=str(prepared_tiny))
    run = work / "exp" / "mustc_s" / "none" / "k5"
    instances = [json.loads(line) for line in (run / "instances.log").read_text().splitlines()]
    assert len(instances) == n_test and any(i["prediction"] for i in instances)
    assert "AL_CA" in (run / "scores.tsv").read_text()  # --computation-aware

    # Budget: the first 2 segments instead of all 10 (all 6 k values run in the sweep's one
    # process, which loads the model once: about a second each).
    shell(command_line(AGENT, SWEEP) + " --max-instances 2", work, DATA=str(prepared_tiny))
    rows = read_tsv(work / "exp" / "mustc_s" / "none" / "simul" / "results.tsv")
    assert [(r["k"], r["segment_size"], r["n_instances"]) for r in rows] == [
        (k, "160", "2") for k in ("1", "3", "5", "7", "9", "1000")]  # segment: the read step

    # every policy on the same checkpoint, the first segment only
    shell(command_line(AGENT, SWEEP_POLICIES) + " --max-instances 1", work,
          DATA=str(prepared_tiny))
    rows = read_tsv(work / "exp" / "mustc_s" / "none" / "simul_policies" / "results.tsv")
    assert [(r["policy"], r["value"], r["n_instances"]) for r in rows] == [
        ("waitk", "3", "1"), ("waitk", "7", "1"), ("alignatt", "2", "1"),
        ("alignatt", "4", "1"), ("alignatt", "8", "1"), ("edatt", "0.400", "1"),
        ("edatt", "0.200", "1"), ("local-agreement", "2", "1"), ("local-agreement", "3", "1")]


@pytest.mark.slow
def test_agent_doc_simulstream_inference(prepared_tiny, trained_tiny, tmp_path, monkeypatch):
    """simulstream's offline runner with the shipped YAML, as a process (~10 s, most of it
    importing torch, fairseq and simulstream): its log, read by simulstream's own reader, holds
    what the processor writes for each wav in this process."""
    from types import SimpleNamespace

    import soundfile as sf
    from simulstream.config import yaml_config
    from simulstream.metrics.readers import LogReader
    from simulstream.server.speech_processors import build_speech_processor
    work = checkout(tmp_path)
    (work / "exp" / "mustc_s" / "none").mkdir(parents=True)
    (work / "exp" / "mustc_s" / "none" / "checkpoint_avg.pt").symlink_to(
        trained_tiny["chunk-causal"])
    shell(command_line(AGENT, SOURCE_LIST), work, DATA=str(prepared_tiny))
    # Budget: the first 2 wavs of the list instead of all 10.
    wavs = (work / "source.txt").read_text().splitlines()[:2]
    (work / "source.txt").write_text("".join(f"{wav}\n" for wav in wavs))
    shell(command_line(AGENT, SIMULSTREAM), work)
    log = work / "exp" / "mustc_s" / "none" / "simulstream.jsonl"
    reader = LogReader(SimpleNamespace(detokenizer_type="simuleval", latency_unit="word"), str(log))
    texts = {name: out.final_text for name, out in reader.final_outputs_and_latencies().items()}

    monkeypatch.setenv("MGCM_CHECKPOINT", str(trained_tiny["chunk-causal"]))
    processor = build_speech_processor(yaml_config(str(ROOT / "configs/simulstream/waitk.yaml")))
    expected = {}
    for wav in wavs:
        audio = sf.read(wav, dtype="float32")[0]
        step = int(processor.speech_chunk_size * 16000)
        words = [w for i in range(0, len(audio), step)
                 for w in processor.process_chunk(audio[i : i + step]).new_tokens]
        words += processor.end_of_stream().new_tokens
        processor.clear()
        expected[Path(wav).stem] = " ".join(words)
    assert texts == expected and all(expected.values())


def test_agent_doc_sweep_options_are_the_scripts():
    """The options docs/agent.md names beside the sweep command parse as described."""
    from fairseq_mgcm.agents.sweep import parse_args  # scripts/simuleval_sweep.py's
    words = command_line(AGENT, SWEEP).split()[2:]
    args, extra = parse_args([*words, "--segment-size", "280", "560", "--device", "cuda",
                              "--fp16", "--max-instances", "7", "--", "--max-len-a", "0.3"])
    assert (args.k, args.segment_size, args.device, args.fp16, args.max_instances, extra) == (
        [1, 3, 5, 7, 9, 1000], [280, 560], "cuda", True, 7, ["--max-len-a", "0.3"])
    text = AGENT.read_text(encoding="utf-8")
    for option in ("`--segment-size 280 560`", "`--device cuda --fp16`", "`--max-instances N`",
                   "`-- --max-len-a 0.3`"):
        assert option in text


# --------------------------------------------------------------------------------------------
# docs/data.md
# --------------------------------------------------------------------------------------------


def _english_french(folder: Path) -> None:
    """``text.en`` / ``text.fr``: the doc's parallel text files, 36 line-aligned pairs."""
    numbers = ("one un", "two deux", "three trois", "four quatre", "five cinq", "six six",
               "seven sept", "eight huit", "nine neuf", "ten dix", "eleven onze", "twelve douze")
    templates = (("i see {} cats", "je vois {} chats"),
                 ("we have {} books", "nous avons {} livres"),
                 ("they want {} apples", "ils veulent {} pommes"))
    pairs = [(en.format(n.split()[0]), fr.format(n.split()[1]))
             for en, fr in templates for n in numbers]
    (folder / "text.en").write_text("".join(en + "\n" for en, _ in pairs))
    (folder / "text.fr").write_text("".join(fr + "\n" for _, fr in pairs))


@pytest.mark.slow
def test_data_doc_corpus_and_preparation_commands(tmp_path):
    work = checkout(tmp_path)
    # Size: 40/10/10 utterances instead of 4000/200/200 (minutes of espeak-ng).
    shell(replaced(command_line(DATA, MAKE_DE), {
        "--n-train 4000 --n-dev 200 --n-test 200": "--n-train 40 --n-dev 10 --n-test 10"}), work)
    shell(command_line(DATA, PREPARE_DE), work)
    assert len(read_tsv(work / "data" / "train.tsv")) == 40
    assert len((work / "data" / "simuleval" / "tst-COMMON" / "source.txt").read_text()
               .splitlines()) == 10

    _english_french(work)
    # Size: 4 dev and 4 test pairs of the 36 (the defaults, 200 each, need 400+ lines: a minute).
    shell(command_line(DATA, MAKE_FR) + " --n-dev 4 --n-test 4", work)
    shell(command_line(DATA, PREPARE_FR), work)
    french = set((work / "text.fr").read_text().splitlines())
    rows = read_tsv(work / "data-fr" / "train.tsv")
    assert len(rows) == 28 and {r["tgt_text"] for r in rows} <= french

    # /path/to/MUSTC_v1.0: the corpus folder, which now holds en-de/ and en-fr/ as the release
    # does: the same pairs as prepared above, read from the release root. Jobs: 1, not 16 (2
    # shared cores here; 16 workers only add start-up time; --jobs 2 ran above).
    for prefix, out, same in ((RELEASE_DE, "data-mustc", "data"), (RELEASE_FR, "data-mustc-fr",
                                                                   "data-fr")):
        shell(replaced(command_line(DATA, prefix), {"/path/to/MUSTC_v1.0": "corpus",
                                                    "--jobs 16": "--jobs 1"}), work)
        assert read_tsv(work / out / "train.tsv") == read_tsv(work / same / "train.tsv")
        assert (work / out / "config.yaml").is_file()


def test_data_doc_fairseq_preparation_is_an_exception_with_flags_fairseq_accepts(monkeypatch):
    """EXCEPTIONS: the two prep_mustc_data.py commands cannot run here. Checked: the reason
    still holds, the script is where the doc says, and fairseq's own parser takes the flags."""
    assert importlib.util.find_spec("torchaudio.sox_effects") is None, (
        "torchaudio has sox_effects again: run prep_mustc_data.py as written instead")
    module = prep_mustc_module()
    for prefix, task, vocab in ((FAIRSEQ_ST, "st", 8000), (FAIRSEQ_ASR, "asr", 5000)):
        words = command_line(DATA, prefix).split()
        assert words[0] == "python" and (FAIRSEQ_DIR / words[1]).is_file()
        parsed: list = []
        monkeypatch.setattr(module, "process", parsed.append)
        monkeypatch.setattr(sys, "argv", words[1:])
        module.main()
        (args,) = parsed
        assert (args.data_root, args.task, args.vocab_type, args.vocab_size, args.cmvn_type) == (
            "$MUSTC_ROOT", task, "unigram", vocab, "global")


@pytest.mark.slow
def test_data_doc_fairseq_import_and_training(tmp_path):
    work = checkout(tmp_path)
    # $MUSTC_ROOT after fairseq's preparation (st and asr, global CMVN): fairseq_prepare runs the
    # two prep_mustc_data.py commands' steps (see EXCEPTIONS), with a vocabulary of 40 pieces,
    # not 8000/5000, for a corpus of 6 utterances per split.
    mustc = fairseq_prepare(varied_mustc(tmp_path / "MUSTC_v1.0"), vocab_size=40)
    shell(command_line(DATA, IMPORT), work, MUSTC_ROOT=str(mustc))
    data = work / "data" / "en-de"
    assert len(read_tsv(data / "train.tsv")) == 6
    assert len((data / "simuleval" / "tst-COMMON" / "source.txt").read_text().splitlines()) == 6

    # run.sh runs from the checkout root, where the doc's import wrote data/en-de: here that
    # folder is the one above, and exp/ (the recipe's output) is this test's own. Budget: CPU,
    # one method, 2 single-batch updates without loader workers or optimizer state in the
    # checkpoints, training only (stage 3); the paper model as shipped.
    command = replaced(command_line(DATA, RECIPE), {"$MUSTC_ROOT": str(mustc),
                                                    "data/en-de": str(data)})
    budget = ("--max-update 2 --max-tokens 6000 --update-freq 1 --num-workers 0 "
              "--no-save-optimizer-state")
    run = run_recipe(*shlex.split(command)[1:], "--exp-dir", str(work / "exp"), "--ngpus", "0",
                     "--methods", "none", "--stop-stage", "3", "--extra-train-args", budget,
                     timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Stage 1:" not in run.stderr  # the imported folder is used as it is
    log = (work / "exp" / "none" / "checkpoints" / "train.log").read_text()
    assert "waitk_s2t_transformer_s" in log and "num_updates 2" in log
    assert f"'data': '{data}'" in log


# --------------------------------------------------------------------------------------------
# docs/install.md
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_install_doc_freeze_of_the_locked_environment_gives_the_lock(tmp_path):
    """The re-lock's last step, run on the environment made from the lock (scripts/setup_env.sh),
    gives back the lock's pins exactly: nothing missing, nothing extra."""
    work = checkout(tmp_path)
    shell(replaced(command_line(INSTALL, FREEZE), {"/tmp/lock-venv": sys.prefix}), work)
    lock = [line for line in (ROOT / "requirements.lock").read_text().splitlines()
            if line and not line.startswith("#")]
    assert (work / "body.txt").read_text().splitlines() == lock


@pytest.mark.slow
@pytest.mark.parametrize("prefix", [PIN_FIRST, PIN_REST])
def test_install_doc_pip_installs_are_exceptions_the_locked_environment_satisfies(tmp_path,
                                                                                 prefix):
    """EXCEPTIONS: these download and build for minutes. Checked: the same pip command, told not
    to touch the index or the environment, finds every requirement already installed in the
    environment made from the lock (so the lock and the requirement files agree)."""
    work = checkout(tmp_path)
    command = replaced(command_line(INSTALL, prefix), {"/tmp/lock-venv": sys.prefix})
    run = shell(command + " --dry-run --no-index", work)
    assert "Would install" not in run.stdout, run.stdout[-2000:]


# --------------------------------------------------------------------------------------------


def test_every_docs_command_is_run_by_a_test_or_a_listed_exception():
    for doc in (AGENT, DATA, INSTALL):
        known = RUN[doc] + tuple(EXCEPTIONS.get(doc, {}))
        for command in commands(doc):
            matches = [prefix for prefix in known if command.startswith(prefix)]
            assert len(matches) == 1, (
                f"{doc.name}: command neither run by tests/test_docs_commands.py nor in its "
                f"EXCEPTIONS (or named twice): {command}")
        for prefix in known:
            command_line(doc, prefix)  # names exactly one command of the doc
