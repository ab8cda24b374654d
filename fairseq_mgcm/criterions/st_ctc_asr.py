"""The registered criterion ``st_ctc_asr``: ST cross-entropy plus CTC, ASR and MT auxiliaries.

    loss = L_st + ctc_weight * L_ctc + asr_weight * L_asr + mt_weight * L_mt

L_st, L_asr and L_mt are label-smoothed cross-entropies summed over target tokens (padding
excluded; L_mt is the ST decoder translating the English transcript, run through the shared
encoder layers, into the same German target);
L_ctc is CTC on the encoder output against the transcript without its EOS, summed over
utterances (``zero_infinity``: an utterance too short for its transcript contributes zero
instead of inf). The CTC blank is ``<s>`` (index 0 of the source dictionary), a symbol that
never occurs inside a transcript.

:meth:`compute_task_losses` returns the weighted losses separately, all from one forward pass,
so the conflict engine can back-propagate them one by one; :meth:`forward` returns their sum.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from fairseq.models import BaseFairseqModel
from fairseq.tasks import FairseqTask
from torch import Tensor

from fairseq_mgcm.criterions.config import StCtcAsrConfig
from fairseq_mgcm.criterions.mt_checks import check_mt_lagging

if TYPE_CHECKING:
    from fairseq.data import ConcatDataset

    from fairseq_mgcm.data.multitask_dataset import TranscriptSpeechToTextDataset


def _log_softmax(logits: Tensor) -> Tensor:
    """Log-probabilities in at least float32 (fp16 logits are upcast, float64 kept)."""
    return F.log_softmax(logits, dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))


PRIMARY_ORDER = ("st", "asr", "ctc", "mt")
"""The first of these with a weight above 0 is the primary task; every other one is auxiliary."""


@register_criterion("st_ctc_asr", dataclass=StCtcAsrConfig)
class StCtcAsrCriterion(FairseqCriterion):
    """Label-smoothed ST CE (primary) + CTC + label-smoothed ASR CE, returned per task."""

    def __init__(self, cfg: StCtcAsrConfig, task: FairseqTask) -> None:
        super().__init__(task)
        for name in ("label_smoothing", "st_weight", "ctc_weight", "asr_weight", "mt_weight"):
            if getattr(cfg, name) < 0:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 0, got {getattr(cfg, name)}"
                )
        self.eps = cfg.label_smoothing
        self.weights = {
            "st": cfg.st_weight,
            "ctc": cfg.ctc_weight,
            "asr": cfg.asr_weight,
            "mt": cfg.mt_weight,
        }
        if not any(self.weights.values()):
            raise ValueError(
                "--st-weight, --ctc-weight, --asr-weight and --mt-weight are all 0: "
                "nothing to train"
            )
        self.primary_task = next(task for task in PRIMARY_ORDER if self.weights[task] > 0)
        """The task whose gradient the conflict methods never change: ST, or for ASR
        pre-training (``--st-weight 0``) the first other task with a weight."""
        self.sentence_avg = cfg.sentence_avg
        src_dict = getattr(task, "transcript_dictionary", None)
        if src_dict is None:
            flag = "--mt-weight > 0" if cfg.mt_weight > 0 else "--criterion st_ctc_asr"
            raise ValueError(
                f"{flag} needs a task with transcripts and a source dictionary "
                "(--task speech_to_text_multitask, src_vocab_filename in config.yaml)"
            )
        self.blank_idx = src_dict.bos()
        self.src_pad = src_dict.pad()
        self.src_eos = src_dict.eos()

    @classmethod
    def build_criterion(cls, cfg: StCtcAsrConfig, task: FairseqTask) -> "StCtcAsrCriterion":
        return cls(cfg, task)

    def check_model_config(self, model_cfg: FairseqDataclass) -> None:
        """Start-up check that the model can serve the enabled tasks (the task calls it after
        building both, before any data is read)."""
        if self.weights["mt"] > 0 and not getattr(model_cfg, "mt_text_encoder", False):
            raise ValueError(
                f"--mt-weight {self.weights['mt']} needs the model option --mt-text-encoder "
                "(the MT embedding that feeds the transcript to the shared encoder layers)"
            )

    def check_dataset(
        self,
        split: str,
        dataset: TranscriptSpeechToTextDataset | ConcatDataset,
        model_cfg: FairseqDataclass,
    ) -> None:
        """Start-up check of a loaded split against the MT wait-k (see
        :func:`fairseq_mgcm.criterions.mt_checks.check_mt_lagging`)."""
        if self.weights["mt"] > 0:
            check_mt_lagging(split, dataset, model_cfg)

    def compute_task_losses(
        self, model: BaseFairseqModel, sample: dict[str, Any]
    ) -> tuple[dict[str, Tensor], int, dict]:
        """Weighted per-task losses ``{"st", "ctc", "asr", "mt"}`` (sum-reduced; a task with
        weight 0 is left out), the sample size and the logging output, from one forward pass."""
        net_input = dict(sample["net_input"])
        if self.weights["asr"] == 0:
            net_input.pop("prev_transcript_tokens", None)
        if self.weights["mt"] > 0:
            if sample.get("transcript") is None:
                raise ValueError(
                    "--mt-weight > 0 needs batches with a transcript (src_text column)"
                )
            net_input["mt_source_tokens"] = sample["transcript"]
            net_input["mt_source_lengths"] = sample.get("transcript_lengths")
        net_output = model(**net_input)
        extra = net_output[1]

        st_loss, st_nll = self._cross_entropy(net_output[0], sample["target"], self.padding_idx)
        losses = {"st": self.weights["st"] * st_loss} if self.weights["st"] > 0 else {}
        ntokens = sample["ntokens"]
        sample_size = sample["target"].size(0) if self.sentence_avg else ntokens
        logging_output = {
            "ntokens": ntokens,
            "nsentences": sample["target"].size(0),
            "sample_size": sample_size,
            "transcript_ntokens": sample.get("transcript_ntokens", 0),
            "st_loss": st_loss.data,
            "st_nll_loss": st_nll.data,
        }
        if self.weights["ctc"] > 0:
            ctc_loss = self._ctc(extra, sample)
            losses["ctc"] = self.weights["ctc"] * ctc_loss
            logging_output["ctc_loss"] = ctc_loss.data
        if self.weights["asr"] > 0:
            if "asr_out" not in extra:
                raise ValueError("--asr-weight > 0 needs a model with an ASR decoder")
            asr_loss, asr_nll = self._cross_entropy(
                extra["asr_out"][0], sample["transcript"], self.src_pad
            )
            losses["asr"] = self.weights["asr"] * asr_loss
            logging_output["asr_loss"] = asr_loss.data
            logging_output["asr_nll_loss"] = asr_nll.data
        if self.weights["mt"] > 0:
            mt_loss, mt_nll = self._cross_entropy(
                extra["mt_out"][0], sample["target"], self.padding_idx
            )
            losses["mt"] = self.weights["mt"] * mt_loss
            logging_output["mt_loss"] = mt_loss.data
            logging_output["mt_nll_loss"] = mt_nll.data
        logging_output["loss"] = sum(loss.data for loss in losses.values())
        logging_output["nll_loss"] = st_nll.data
        return losses, sample_size, logging_output

    def forward(
        self, model: BaseFairseqModel, sample: dict[str, Any], reduce: bool = True
    ) -> tuple[Tensor, int, dict]:
        losses, sample_size, logging_output = self.compute_task_losses(model, sample)
        # a Tensor, not sum()'s empty-case 0: __init__ refuses all-zero weights, so never empty
        return cast(Tensor, sum(losses.values())), sample_size, logging_output

    def _cross_entropy(self, logits: Tensor, target: Tensor, pad: int) -> tuple[Tensor, Tensor]:
        lprobs = _log_softmax(logits)
        return label_smoothed_nll_loss(
            lprobs.view(-1, lprobs.size(-1)), target.view(-1), self.eps, ignore_index=pad
        )

    def _ctc(self, extra: dict, sample: dict) -> Tensor:
        if "ctc_logits" not in extra:
            raise ValueError("--ctc-weight > 0 needs a model with a CTC head")
        lprobs = _log_softmax(extra["ctc_logits"])  # T x B x V
        transcript = sample["transcript"]
        keep = (transcript != self.src_pad) & (transcript != self.src_eos)
        with torch.backends.cudnn.flags(enabled=False):
            return F.ctc_loss(
                lprobs,
                transcript[keep],
                extra["encoder_lengths"],
                keep.sum(dim=1),
                blank=self.blank_idx,
                reduction="sum",
                zero_infinity=True,
            )

    @staticmethod
    def reduce_metrics(logging_outputs: list[dict[str, Any]]) -> None:
        def total(key: str) -> float:
            return float(sum(log.get(key, 0) for log in logging_outputs))

        sample_size = total("sample_size")
        ntokens = total("ntokens")
        transcript_ntokens = total("transcript_ntokens")
        ln2 = math.log(2)
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1) / ln2, sample_size, round=3)
        metrics.log_scalar("nll_loss", total("nll_loss") / max(ntokens, 1) / ln2, ntokens, round=3)
        metrics.log_derived("ppl", lambda meters: 2 ** meters["nll_loss"].avg)
        metrics.log_scalar("st_loss", total("st_loss") / max(ntokens, 1) / ln2, ntokens, round=3)
        metrics.log_scalar(
            "st_nll_loss", total("st_nll_loss") / max(ntokens, 1) / ln2, ntokens, round=3
        )
        for key in ("ctc_loss", "asr_loss", "asr_nll_loss"):
            if any(key in log for log in logging_outputs):
                value = total(key) / max(transcript_ntokens, 1) / ln2
                metrics.log_scalar(key, value, transcript_ntokens, round=3)
        for key in ("mt_loss", "mt_nll_loss"):  # per German target token, like st_loss
            if any(key in log for log in logging_outputs):
                metrics.log_scalar(key, total(key) / max(ntokens, 1) / ln2, ntokens, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
