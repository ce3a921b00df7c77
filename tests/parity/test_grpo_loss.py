"""tune's GRPO loss core (advantages and policy loss) against TRL 1.16's GRPOTrainer on the same tensors.

TRL has no standalone loss or advantage functions: both live inside GRPOTrainer methods. We call
those methods on a bare trainer object (object.__new__, then only the attributes the methods read):
  - advantages: GRPOTrainer._generate_and_score_completions, with generation and reward functions
    stubbed to return our fixed completions and rewards (nan = an unscorable completion);
  - loss: GRPOTrainer._compute_loss, with the model forward stubbed to return our fixed per-token
    log-probs and entropies (leaf tensors, so TRL's own backward gives the gradient).
tune runs the same numbers through tests/parity/tune_rl_driver.cpp. Everything is float64; the
tolerance asked for is 1e-6 (measured differences are ~1e-16, see docs/rl-losses.md).
"""
import json
import os
import subprocess
import types
from collections import defaultdict

import pytest
import torch

trl = pytest.importorskip("trl")
from trl import GRPOTrainer  # noqa: E402

DRIVER = os.environ.get("TUNE_RL_DRIVER")
pytestmark = pytest.mark.skipif(not DRIVER, reason="TUNE_RL_DRIVER not set (run through ctest)")
TOL = 1e-6
N, T, G, L_MAX = 12, 10, 4, 12


def tune(cases):
    out = subprocess.run([DRIVER], input=json.dumps({"cases": cases}), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["results"]


class Accel:
    device = torch.device("cpu")
    process_index = 0
    num_processes = 1
    is_main_process = True
    sync_gradients = True

    def gather(self, x):
        return x

    gather_for_metrics = gather

    def reduce(self, x, reduction="sum"):
        return x

    def unwrap_model(self, m):
        return m


def bare_trainer(**attrs):
    t = object.__new__(GRPOTrainer)
    t.accelerator = Accel()
    t.model = types.SimpleNamespace(training=True, is_gradient_checkpointing=False)
    t._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    for k, v in attrs.items():
        setattr(t, k, v)
    return t


def trl_advantages(rewards, scale):
    """rewards [N] float64, nan = unscorable; TRL's own reward-to-advantage code."""
    n = rewards.numel()
    t = bare_trainer(
        environment_factories=None, tools=None, environments=None, _tokenizer=types.SimpleNamespace(pad_token_id=0),
        pad_to_multiple_of=None, mask_truncated_completions=False, num_iterations=1, use_vllm=False, beta=0.0,
        ref_model=None, num_generations=G, multi_objective_aggregation="sum_then_normalize",
        reward_weights=torch.ones(1, dtype=torch.float64), reward_func_names=["r"], scale_rewards=scale,
        _logs={"prompt": [], "completion": [], "rewards": defaultdict(list), "advantages": [],
               "extra": defaultdict(list)},
        _pending_extra_logs={}, _pending_metrics={}, log_multimodal=False,
        args=types.SimpleNamespace(steps_per_generation=1, gradient_accumulation_steps=1,
                                   per_device_train_batch_size=n, gradient_checkpointing_kwargs=None))
    t._generate = lambda prompts: ([[1, 2]] * n, [[3, 4, 5]] * n, None, ["c"] * n, None, {}, None, None)
    t._calculate_rewards = lambda inputs, prompts, completions, ids: rewards.view(-1, 1)
    return t._generate_and_score_completions([{"prompt": "p"}] * n)["advantages"]


def make_batch(seed, noise=0.3, unscorable=()):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (N,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()  # right padding, every row >= 1 token
    logp = -torch.rand(N, T, generator=g, dtype=torch.float64) * 3
    old = logp + noise * torch.randn(N, T, generator=g, dtype=torch.float64)
    ref = logp + 0.2 * torch.randn(N, T, generator=g, dtype=torch.float64)
    entropy = torch.rand(N, T, generator=g, dtype=torch.float64) * 2
    rewards = torch.randint(0, 4, (N,), generator=g).double() / 3  # ties: some groups without spread
    rewards[4:8] = 0.5  # one zero-variance group
    for i in unscorable:
        rewards[i] = float("nan")
    return dict(mask=mask, logp=logp, old=old, ref=ref, entropy=entropy, rewards=rewards)


def trl_loss(b, advantages, loss_type, beta=0.0, eps=(0.2, 0.2), level="token", delta=None, entropy_coef=0.0,
             micro_batches=1):
    """Sum over micro-batches of TRL's _compute_loss (TRL's gradient accumulation), with its backward."""
    logp = b["logp"].clone().requires_grad_(True)
    entropy = b["entropy"].clone().requires_grad_(True)
    k = micro_batches
    t = bare_trainer(
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level=level, beta=beta,
        loss_type=loss_type, epsilon_low=eps[0], epsilon_high=eps[1], use_vllm=False,
        current_gradient_accumulation_steps=k, _entropy_bonus_enabled=entropy_coef != 0.0, entropy_coef=entropy_coef,
        use_adaptive_entropy=False, aux_loss_enabled=False, max_completion_length=L_MAX,
        args=types.SimpleNamespace(use_bias_correction_kl=False, delta=delta, steps_per_generation=k))
    total = 0.0
    rows_per = N // k
    for i in range(k):
        rows = slice(i * rows_per, (i + 1) * rows_per)
        t._get_per_token_logps_and_entropies = lambda *a, **kw: (logp[rows], entropy[rows], None)
        inputs = {"prompt_ids": torch.ones(rows_per, 2, dtype=torch.long),
                  "prompt_mask": torch.ones(rows_per, 2, dtype=torch.long),
                  "completion_ids": torch.ones(rows_per, T, dtype=torch.long), "completion_mask": b["mask"][rows],
                  "advantages": advantages[rows], "old_per_token_logps": b["old"][rows],
                  "num_items_in_batch": b["mask"].sum()}
        if beta:
            inputs["ref_per_token_logps"] = b["ref"][rows]
        loss = t._compute_loss(None, inputs)
        loss.backward()
        total += loss.detach().item()
    metrics = {k: v[-1] for k, v in t._metrics["train"].items()}
    return total, logp.grad, entropy.grad, metrics


def tune_case(b, config, rewards=None, advantages=None, micro_batches=1):
    case = {"config": config, "logp": b["logp"].tolist(), "old_logp": b["old"].tolist(), "ref_logp": b["ref"].tolist(),
            "mask": b["mask"].tolist(), "entropy": b["entropy"].tolist(), "micro_batches": micro_batches}
    if advantages is not None:
        case["advantages"] = advantages.tolist()
    else:
        case["rewards"] = rewards
    return case


def rewards_spec(b, scale):
    values = [None if v != v else v for v in b["rewards"].tolist()]
    valid = [0.0 if v is None else 1.0 for v in values]
    return {"values": values, "valid": valid, "group_size": G, "scale": scale, "eps": 1e-4}


def assert_close(ours, theirs, what):
    diff = (torch.tensor(ours, dtype=torch.float64) - torch.as_tensor(theirs, dtype=torch.float64)).abs().max().item()
    assert diff <= TOL, f"{what}: max |tune - TRL| = {diff:.3g}"


def check(ours, trl_total, trl_grad, what, trl_entropy_grad=None):
    assert abs(ours["loss"] - trl_total) <= TOL, f"{what}: loss {ours['loss']} vs TRL {trl_total}"
    assert_close(ours["grad"], trl_grad, what + " grad")
    if trl_entropy_grad is not None:
        assert_close(ours["entropy_grad"], trl_entropy_grad, what + " entropy grad")


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("unscorable", [(), (1, 9)])
def test_advantages_match_trl(scale, unscorable):
    b = make_batch(3, unscorable=unscorable)
    theirs = trl_advantages(b["rewards"], scale)
    ours = tune([tune_case(b, {}, rewards=rewards_spec(b, scale))])[0]["advantages"]
    assert_close(ours, theirs, f"advantages scale={scale}")
    assert torch.count_nonzero(theirs[4:8]) == 0  # the zero-variance group carries no signal in both


LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo"]


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("eps", [(0.2, 0.2), (0.2, 0.28)])
def test_policy_loss_matches_trl(loss_type, scale, beta, eps):
    b = make_batch(7, unscorable=(2,))
    adv = trl_advantages(b["rewards"], scale)
    total, grad, _, metrics = trl_loss(b, adv, loss_type, beta=beta, eps=eps)
    cfg = {"aggregation": loss_type, "clip_low": eps[0], "clip_high": eps[1], "beta": beta, "kl": "k3",
           "max_completion_length": L_MAX}
    ours = tune([tune_case(b, cfg, rewards=rewards_spec(b, scale))])[0]
    what = f"{loss_type} scale={scale} beta={beta} eps={eps}"
    assert_close(ours["advantages"], adv, what + " advantages")
    check(ours, total, grad, what)
    m = ours["metrics"]
    assert m["clip_ratio/low"] == pytest.approx(metrics["clip_ratio/low_mean"], abs=TOL)
    assert m["clip_ratio/high"] == pytest.approx(metrics["clip_ratio/high_mean"], abs=TOL)
    assert m["entropy"] == pytest.approx(metrics["entropy"], abs=TOL)
    if beta:
        assert m["kl"] == pytest.approx(metrics["kl"], abs=TOL)
    assert m["clip_ratio/low"] + m["clip_ratio/high"] > 0  # the data does exercise the clip


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
@pytest.mark.parametrize("k", [2, 4])
def test_micro_batches_match_trl_accumulation(loss_type, k):
    """TRL accumulating k micro-batches equals tune's step split into k micro-batches (and into 1)."""
    b = make_batch(11)
    adv = trl_advantages(b["rewards"], "group")
    total, grad, _, _ = trl_loss(b, adv, loss_type, beta=0.04, eps=(0.2, 0.28), micro_batches=k)
    cfg = {"aggregation": loss_type, "clip_low": 0.2, "clip_high": 0.28, "beta": 0.04, "max_completion_length": L_MAX}
    split, whole = tune([tune_case(b, cfg, advantages=adv, micro_batches=k), tune_case(b, cfg, advantages=adv)])
    check(split, total, grad, f"{loss_type} k={k}")
    check(whole, total, grad, f"{loss_type} k={k} vs one micro-batch")


@pytest.mark.parametrize("eps", [(0.2, 0.28), (3e-4, 4e-4)])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_gspo_sequence_ratio_matches_trl(eps, beta):
    """GSPO: TRL importance_sampling_level="sequence" with loss_type grpo (the paper's setup)."""
    b = make_batch(5)
    adv = trl_advantages(b["rewards"], "group")
    total, grad, _, _ = trl_loss(b, adv, "grpo", beta=beta, eps=eps, level="sequence")
    cfg = {"aggregation": "grpo", "ratio_level": "sequence", "clip_low": eps[0], "clip_high": eps[1], "beta": beta}
    check(tune([tune_case(b, cfg, advantages=adv)])[0], total, grad, f"gspo eps={eps}")


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_dual_clip_matches_trl_delta(loss_type):
    """verl's dual clip c for A < 0 gives the loss of TRL's two-sided clip delta = c (c > 1 + eps_high)."""
    b = make_batch(9, noise=1.0)
    adv = trl_advantages(b["rewards"], "group")
    total, grad, _, _ = trl_loss(b, adv, loss_type, eps=(0.2, 0.28), delta=3.0)
    cfg = {"aggregation": loss_type, "clip_low": 0.2, "clip_high": 0.28, "dual_clip": 3.0}
    ours = tune([tune_case(b, cfg, advantages=adv)])[0]
    check(ours, total, grad, "dual clip")
    assert ours["metrics"]["clip_ratio/dual"] > 0  # some A < 0 tokens have a ratio above 3


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_cispo_matches_trl(beta):
    """TRL's cispo: weight sg(min(rho, epsilon_high)) = tune's clip_high = epsilon_high - 1, no floor."""
    b = make_batch(13, noise=1.0)
    adv = trl_advantages(b["rewards"], "group")
    total, grad, _, _ = trl_loss(b, adv, "cispo", beta=beta, eps=(0.2, 2.0))
    cfg = {"objective": "cispo", "aggregation": "dapo", "clip_low": 1.0, "clip_high": 1.0, "beta": beta}
    check(tune([tune_case(b, cfg, advantages=adv)])[0], total, grad, "cispo")


def test_entropy_bonus_matches_trl_dapo():
    """TRL subtracts coef x the token-mean entropy; tune's per-token bonus aggregates the same way
    under token_mean (under seq_mean tune keeps its own aggregation: docs/rl-losses.md)."""
    b = make_batch(17)
    adv = trl_advantages(b["rewards"], "group")
    total, grad, egrad, _ = trl_loss(b, adv, "dapo", eps=(0.2, 0.28), entropy_coef=0.01)
    cfg = {"aggregation": "dapo", "clip_low": 0.2, "clip_high": 0.28, "entropy_coef": 0.01}
    check(tune([tune_case(b, cfg, advantages=adv)])[0], total, grad, "entropy bonus", trl_entropy_grad=egrad)
