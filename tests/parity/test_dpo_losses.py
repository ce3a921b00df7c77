"""tune's preference losses against TRL's on the same log-probs.

TRL has no standalone loss functions any more: DPOTrainer._compute_loss takes a model and a batch.
We call it on a stub trainer whose "model" returns the per-token log-probs we chose, with the
reference log-probs precomputed (TRL's precompute_ref_log_probs path), so TRL does its own
summing, IPO length averaging and metric computation. SimPO / cDPO come from CPOTrainer.cpo_loss
(TRL 1.x dropped label smoothing from DPO's sigmoid loss; cDPO is CPO's sigmoid with
label_smoothing applied to the DPO log-ratio difference, which is the same function of delta).
RewardTrainer.compute_loss is the Bradley-Terry oracle.
"""
import json
import os
import subprocess
import types
from collections import defaultdict

import pytest
import torch

trl = pytest.importorskip("trl")
from trl import DPOTrainer, RewardTrainer  # noqa: E402

DRIVER = os.environ.get("TUNE_PREF_DRIVER")
pytestmark = pytest.mark.skipif(not DRIVER, reason="TUNE_PREF_DRIVER not set (run through ctest)")


def tune(payload):
    out = subprocess.run([DRIVER], input=json.dumps(payload), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


class Accel:
    device = torch.device("cpu")

    def gather(self, x):
        return x

    gather_for_metrics = gather

    def unwrap_model(self, m):
        return m


def random_batch(seed, B=6, T=12, equal_lengths=False):
    """Per-token log-probs [2B, T-1] with completion masks of varied lengths (TRL's layout)."""
    g = torch.Generator().manual_seed(seed)
    prompt = 3
    mask = torch.zeros(2 * B, T, dtype=torch.long)
    for i in range(2 * B):
        n = 5 if equal_lengths else int(torch.randint(1, T - prompt, (1,), generator=g))
        mask[i, prompt:prompt + n] = 1
    per_token = -torch.rand(2 * B, T - 1, generator=g, dtype=torch.float64) * 3
    per_token = per_token * mask[:, 1:]
    ref_per_token = (-torch.rand(2 * B, T - 1, generator=g, dtype=torch.float64) * 3) * mask[:, 1:]
    return mask, per_token, ref_per_token


def trl_dpo(loss_type, beta, mask, per_token, ref_per_token, label_smoothing=0.0, loss_weights=None):
    t = object.__new__(DPOTrainer)
    B2, T = mask.shape
    t.model = types.SimpleNamespace(training=True)
    t.accelerator = Accel()
    t.aux_loss_enabled = False
    t.ld_alpha = None
    t.precompute_ref_logps = True
    t.f_divergence_type = "reverse_kl"
    t.loss_types = loss_type if isinstance(loss_type, list) else [loss_type]
    t.loss_weights = loss_weights or [1.0] * len(t.loss_types)
    t.beta = beta
    t.label_smoothing = label_smoothing
    t.use_weighting = False
    t._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    t._total_train_tokens = 0
    t._tp_size = 1
    t.args = types.SimpleNamespace(gradient_checkpointing=False)
    zeros = torch.zeros(B2, T - 1)

    def model(**kwargs):
        return types.SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros,
                                     is_top1=torch.zeros(B2, T - 1, dtype=torch.bool))

    ref = ref_per_token.sum(1)
    inputs = {"input_ids": torch.zeros(B2, T, dtype=torch.long), "attention_mask": torch.ones(B2, T, dtype=torch.long),
              "completion_mask": mask, "ref_chosen_logps": ref[: B2 // 2], "ref_rejected_logps": ref[B2 // 2:]}
    loss = t._compute_loss(model, inputs, return_outputs=False)
    return float(loss), {k: v[-1] for k, v in t._metrics["train"].items()}


def tune_dpo(loss, beta, mask, per_token, ref_per_token, **extra):
    B = mask.shape[0] // 2
    n = mask[:, 1:].sum(1).double()
    s, r = per_token.sum(1), ref_per_token.sum(1)
    seq = lambda v: {"chosen": v[:B].tolist(), "rejected": v[B:].tolist(),  # noqa: E731
                     "chosen_tokens": n[:B].tolist(), "rejected_tokens": n[B:].tolist()}
    cfg = {"loss": loss, "beta": beta, **extra}
    return tune({"config": cfg, "policy": seq(s), "reference": seq(r)})


METRICS = ["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"]


@pytest.mark.parametrize("loss", ["sigmoid", "hinge", "ipo", "robust"])
@pytest.mark.parametrize("beta", [0.1, 0.5])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dpo_losses_match_trl(loss, beta, seed):
    mask, lp, ref = random_batch(seed)
    extra = {"label_smoothing": 0.2} if loss == "robust" else {}
    trl_loss, trl_metrics = trl_dpo(loss, beta, mask, lp, ref, **extra)
    ours = tune_dpo(loss, beta, mask, lp, ref, **extra)
    mean = sum(ours["losses"]) / len(ours["losses"])
    assert mean == pytest.approx(trl_loss, rel=1e-9, abs=1e-12)
    for k in METRICS:
        assert ours["metrics"][k] == pytest.approx(trl_metrics[k], rel=1e-6, abs=1e-9), k


def test_per_pair_losses_match_trl():
    """Pair by pair (TRL reports the batch mean only): each pair alone as a batch."""
    mask, lp, ref = random_batch(7, B=5)
    B = 5
    ours = tune_dpo("sigmoid", 0.1, mask, lp, ref)["losses"]
    for i in range(B):
        rows = [i, B + i]
        trl_loss, _ = trl_dpo("sigmoid", 0.1, mask[rows], lp[rows], ref[rows])
        assert ours[i] == pytest.approx(trl_loss, rel=1e-9)


def test_nll_term_matches_trl_sft_loss_on_equal_lengths():
    """TRL's "sft" loss is the token mean over the batch; ours is per sequence (RPO). With equal
    chosen lengths the two agree."""
    mask, lp, ref = random_batch(4, equal_lengths=True)
    trl_loss, _ = trl_dpo(["sigmoid", "sft"], 0.1, mask, lp, ref, loss_weights=[1.0, 0.7])
    ours = tune_dpo("sigmoid", 0.1, mask, lp, ref, nll_alpha=0.7)
    assert sum(ours["losses"]) / len(ours["losses"]) == pytest.approx(trl_loss, rel=1e-9)


def cpo(loss_type, beta, label_smoothing=0.0, gamma=0.5):
    from trl.experimental.cpo import CPOTrainer
    t = object.__new__(CPOTrainer)
    t.alpha = 0.0
    t.loss_type = loss_type
    t.beta = beta
    t.label_smoothing = label_smoothing
    t.simpo_gamma = gamma
    t.accelerator = Accel()
    return t


@pytest.mark.parametrize("beta,gamma,ls", [(2.0, 0.5, 0.0), (2.5, 1.4, 0.0), (2.0, 0.5, 0.1)])
def test_simpo_matches_trl_cpo(beta, gamma, ls):
    """TRL's CPO trainer with loss_type simpo averages log-probs over completion tokens first."""
    mask, lp, _ = random_batch(11)
    B = mask.shape[0] // 2
    n = mask[:, 1:].sum(1).double()
    avg = lp.sum(1) / n
    losses, cr, rr = cpo("simpo", beta, ls, gamma).cpo_loss(avg[:B], avg[B:])
    s = lp.sum(1)
    seq = {"chosen": s[:B].tolist(), "rejected": s[B:].tolist(), "chosen_tokens": n[:B].tolist(),
           "rejected_tokens": n[B:].tolist()}
    ours = tune({"config": {"loss": "simpo", "beta": beta, "simpo_gamma": gamma, "label_smoothing": ls}, "policy": seq})
    assert ours["losses"] == pytest.approx(losses.tolist(), rel=1e-9)
    assert ours["chosen_rewards"] == pytest.approx(cr.tolist(), rel=1e-9)
    assert ours["rejected_rewards"] == pytest.approx(rr.tolist(), rel=1e-9)


@pytest.mark.parametrize("ls", [0.1, 0.3])
def test_cdpo_label_smoothing_matches_trl_formula(ls):
    mask, lp, ref = random_batch(5)
    B = mask.shape[0] // 2
    ratio = lp.sum(1) - ref.sum(1)
    trl_losses, _, _ = cpo("sigmoid", 0.1, ls).cpo_loss(ratio[:B], ratio[B:])
    ours = tune_dpo("sigmoid", 0.1, mask, lp, ref, label_smoothing=ls)
    assert ours["losses"] == pytest.approx(trl_losses.tolist(), rel=1e-9)


@pytest.mark.parametrize("center", [None, 0.01])
@pytest.mark.parametrize("with_margin", [False, True])
def test_bradley_terry_matches_trl_reward_trainer(center, with_margin):
    g = torch.Generator().manual_seed(3)
    B = 8
    rewards = torch.randn(2 * B, 1, generator=g, dtype=torch.float64)
    margin = torch.rand(B, generator=g, dtype=torch.float64) if with_margin else torch.zeros(B, dtype=torch.float64)
    t = object.__new__(RewardTrainer)
    t.model = types.SimpleNamespace(training=False)
    t.args = types.SimpleNamespace(center_rewards_coefficient=center)
    t.accelerator = Accel()
    t._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    t._total_train_tokens = 0
    inputs = {"attention_mask": torch.ones(2 * B, 4)}
    if with_margin:
        inputs["margin"] = margin
    trl_loss = float(t.compute_loss(lambda **kw: types.SimpleNamespace(logits=rewards), inputs))
    ours = tune({"bradley_terry": {"chosen": rewards[:B, 0].tolist(), "rejected": rewards[B:, 0].tolist(),
                                   "margin": margin.tolist(), "center": center or 0.0}})
    assert sum(ours["losses"]) / B == pytest.approx(trl_loss, rel=1e-9)
    m = t._metrics["eval"]
    assert m["accuracy"][-1] == pytest.approx(float((rewards[:B] > rewards[B:]).double().mean()))
