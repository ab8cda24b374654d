"""SpecAugment written by the preparation: fairseq's policies, applied when training, never when
evaluating, and refused on an evaluation split."""
import numpy as np
import pytest
import yaml
from data_testing import varied_mustc
from fairseq.data.audio.feature_transforms.specaugment import SpecAugmentTransform
from fairseq_reference import prep_mustc_module

from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.mustc.prepare import prepare
from fairseq_mgcm.data.mustc.specaugment import POLICIES
from fairseq_mgcm.tasks import SpeechToTextMultitaskConfig, SpeechToTextMultitaskTask

_FIELDS = ("time_warp_w", "freq_mask_n", "freq_mask_f", "time_mask_n", "time_mask_t",
           "time_mask_p")


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    root = tmp_path_factory.mktemp("specaugment")
    corpus = varied_mustc(root / "corpus", splits=("train", "dev"), talks_per_split=2,
                          segs_per_talk=3)
    return prepare(corpus, root / "data", splits=("train", "dev"), vocab_size_tgt=60,
                   vocab_size_src=60, specaugment="lb")


@pytest.mark.parametrize("policy", ["lb", "ld", "sm", "ss"])
def test_policies_are_fairseqs(policy, tmp_path):
    """Our table read by fairseq's transform equals what fairseq's own recipe writer writes."""
    prep_mustc_module()
    import sys

    writer = sys.modules["examples.speech_to_text.data_utils"].S2TDataConfigWriter(
        tmp_path / "c.yaml")
    getattr(writer, f"set_specaugment_{policy}_policy")()
    theirs = dict(writer.config["specaugment"])
    theirs["time_warp_W"] = theirs.pop("time_wrap_W")  # the writer misspells the key it reads
    ours_t = SpecAugmentTransform.from_config_dict(POLICIES[policy])
    theirs_t = SpecAugmentTransform.from_config_dict(theirs)
    assert [getattr(ours_t, f) for f in _FIELDS] == [getattr(theirs_t, f) for f in _FIELDS]


def _task(data):
    task = SpeechToTextMultitaskTask.setup_task(SpeechToTextMultitaskConfig(data=str(data)))
    for split in ("train", "dev"):
        task.load_dataset(split)
    return task


def test_training_applies_specaugment_and_evaluation_does_not(augmented, tmp_path):
    config = yaml.safe_load((augmented / "config.yaml").read_text())
    assert config["specaugment"] == POLICIES["lb"]
    plain = tmp_path / "plain"  # the same folder without SpecAugment
    plain.mkdir()
    for path in augmented.iterdir():
        if path.is_file() and path.name != "config.yaml":
            (plain / path.name).symlink_to(path)
    config.pop("specaugment")
    config["feature_transforms"] = {"*": ["global_cmvn"]}
    (plain / "config.yaml").write_text(yaml.safe_dump(config))
    task, reference = _task(augmented), _task(plain)
    np.random.seed(0)
    train, ref_train = task.dataset("train"), reference.dataset("train")
    changed = [not np.array_equal(train[i].source.numpy(), ref_train[i].source.numpy())
               for i in range(len(train))]
    assert sum(changed) >= len(train) // 2  # lb masks a time span of every utterance
    dev, ref_dev = task.dataset("dev"), reference.dataset("dev")
    for i in range(len(dev)):
        assert np.array_equal(dev[i].source.numpy(), ref_dev[i].source.numpy())


def test_specaugment_on_an_eval_split_is_refused(augmented, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in augmented.iterdir():
        if path.is_file() and path.name != "config.yaml":
            (bad / path.name).symlink_to(path)
    config = yaml.safe_load((augmented / "config.yaml").read_text())
    config["feature_transforms"] = {"*": ["global_cmvn", "specaugment"]}
    (bad / "config.yaml").write_text(yaml.safe_dump(config))
    task = SpeechToTextMultitaskTask.setup_task(SpeechToTextMultitaskConfig(data=str(bad)))
    task.load_dataset("train")  # fine for training
    with pytest.raises(ValueError, match=r"specaugment to the evaluation split 'dev'.*_train"):
        task.load_dataset("dev")


def test_unknown_policy_is_refused_before_writing(tmp_path):
    corpus = varied_mustc(tmp_path / "corpus", splits=("train",))
    with pytest.raises(CorpusError, match="--specaugment must be one of lb, ld, sm, ss"):
        prepare(corpus, tmp_path / "data", splits=("train",), specaugment="xx")
    assert not (tmp_path / "data").exists()
