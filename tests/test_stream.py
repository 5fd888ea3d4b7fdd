"""stream-x (stream AC, stream Q, stream TD): ObGD against hand computations, traces, sparse init,
running statistics, the time feature, hand gradients against autograd, the streaming loop's time-limit
handling, population independence, resume; learning tests on CartPole, Pendulum and a random walk."""
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from drlbench import envs
from drlbench.agents._stream import (AdaptiveObGD, ObGD, RewardScaler, RunningMeanVar, StreamMLP, TimeFeature,
                                     sparse_init_)
from drlbench.agents.stream_ac import gaussian_objective, softmax_objective
from drlbench.cli import build_parser, resolve_run
from drlbench.harness import Session
from drlbench.loops import streaming
from drlbench.population import Population


def session_for(tmp_path, agent, env, steps, *overrides, seeds="0", batched=False, eval_every=100_000):
    args = build_parser().parse_args(
        ["run", agent, "--env", env, "--steps", str(steps), "--seeds", seeds, "--out", str(tmp_path), "--quiet",
         "--eval-every", str(eval_every), "--eval-episodes", "2", *(["--batched"] if batched else []),
         *(["--set", *overrides] if overrides else [])])
    (cfg,), _ = resolve_run(args)
    return Session(cfg, resume=False)


# --- ObGD ---------------------------------------------------------------------------------
def obgd_on(theta, grad, **kw):
    param = torch.nn.Parameter(torch.tensor(theta))
    param.grad = torch.tensor(grad)
    opt = ObGD([param], **{"lr": 1.0, "gamma": 0.5, "lamda": 0.5, "kappa": 2.0, **kw})
    return param, opt


def test_obgd_step_when_the_bound_binds():
    # one member, z = g = [0.5, -0.25]: ||z||_1 = 0.75; delta = 2: M = 1 * 2 * max(2, 1) * 0.75 = 3 > 1
    param, opt = obgd_on([[1.0, 1.0]], [[0.5, -0.25]])
    step = opt.step(torch.tensor([2.0]), torch.tensor([False]))
    assert step.item() == pytest.approx(1.0 / 3.0)
    assert param.detach().tolist()[0] == pytest.approx([1.0 + 2.0 / 3.0 * 0.5, 1.0 - 2.0 / 3.0 * 0.25])


def test_obgd_step_when_the_bound_does_not_bind():
    # lr 0.1, kappa 2, delta = 0.5 -> delta_bar = 1; ||z||_1 = 0.3: M = 0.1 * 2 * 1 * 0.3 = 0.06 <= 1 -> alpha
    param, opt = obgd_on([[0.0, 0.0, 0.0]], [[0.1, 0.1, -0.1]], lr=0.1)
    step = opt.step(torch.tensor([0.5]), torch.tensor([False]))
    assert step.item() == pytest.approx(0.1)
    assert param.detach().tolist()[0] == pytest.approx([0.005, 0.005, -0.005])


def test_obgd_members_get_their_own_step_sizes():
    # member 0 as in the binding case, member 1 with a tiny trace: unbounded
    param, opt = obgd_on([[1.0, 1.0], [0.0, 0.0]], [[0.5, -0.25], [0.01, 0.01]])
    step = opt.step(torch.tensor([2.0, -1.0]), torch.tensor([False, False]))
    # member 1: M = 1 * 2 * 1 * 0.02 = 0.04 -> step 1
    assert step.tolist() == pytest.approx([1.0 / 3.0, 1.0])
    assert param.detach()[1].tolist() == pytest.approx([-0.01, -0.01])


def test_trace_decays_by_gamma_lambda_and_resets_per_member():
    param, opt = obgd_on([[0.0], [0.0]], [[1.0], [1.0]], lr=1e-3, gamma=0.9, lamda=0.5)
    opt.step(torch.zeros(2), torch.tensor([False, True]))       # delta 0: no move, traces only
    assert opt.traces[0].tolist() == [[1.0], [0.0]]               # member 1 reset after its update
    param.grad = torch.tensor([[2.0], [2.0]])
    opt.step(torch.zeros(2), torch.tensor([False, False]))
    assert opt.traces[0][:, 0].tolist() == pytest.approx([0.45 + 2.0, 2.0])
    state = opt.state_dict()
    opt.zero_traces()
    opt.load_state_dict(state)
    assert opt.traces[0][:, 0].tolist() == pytest.approx([2.45, 2.0])


def test_adaptive_obgd_by_hand():
    param = torch.nn.Parameter(torch.tensor([[1.0, 1.0]]))
    param.grad = torch.tensor([[0.5, -0.25]])
    opt = AdaptiveObGD([param], lr=1.0, gamma=0.5, lamda=0.5, kappa=2.0)
    # step 1, delta 2: z = g; v = 0.001 (delta z)^2 = [1e-3, 2.5e-4]; v_hat = v / (1 - 0.999) = [1, 0.25]
    # z~ = z / sqrt(v_hat) = [0.5, -0.5]; M = 1 * 2 * 2 * ||z~||_1 = 4 -> step 1/4; theta += 0.25 * 2 * z~
    step = opt.step(torch.tensor([2.0]), torch.tensor([True]))
    assert step.item() == pytest.approx(0.25, rel=1e-6)
    assert param.detach()[0].tolist() == pytest.approx([1.25, 0.75], rel=1e-6)
    assert opt.traces[0].abs().sum().item() == 0.0                       # traces reset, second moments kept
    # step 2, delta 0.5, g = [1, 0]: z = g; v = 0.999 v + 0.001 (0.5 z)^2; v_hat = v / (1 - 0.999^2)
    param.grad = torch.tensor([[1.0, 0.0]])
    v = [0.999 * 1e-3 + 1e-3 * 0.25, 0.999 * 2.5e-4]
    z_tilde = 1.0 / math.sqrt(v[0] / (1 - 0.999 ** 2) + 1e-8)
    expected_step = 1.0 / (1.0 * 2.0 * 1.0 * z_tilde)                       # M = 2 ||z~||_1 > 1
    state = opt.state_dict()
    step = opt.step(torch.tensor([0.5]), torch.tensor([False]))
    assert opt.second_moments[0][0].tolist() == pytest.approx(v, rel=1e-5)
    assert step.item() == pytest.approx(expected_step, rel=1e-5)
    assert param.detach()[0].tolist() == pytest.approx([1.25 + expected_step * 0.5 * z_tilde, 0.75], rel=1e-5)
    again = AdaptiveObGD([torch.nn.Parameter(torch.zeros(1, 2))], lr=1.0, gamma=0.5, lamda=0.5, kappa=2.0)
    again.load_state_dict(state)
    assert again.count == 1 and torch.equal(again.second_moments[0], state["second_moments"][0])


def test_unknown_optimizer_is_a_usage_error(run_cli, tmp_path):
    code, _, err = run_cli("run", "stream_q", "--env", "CartPole", "--steps", "10", "--out", tmp_path, "--quiet",
                           "--set", "optimizer=adam")
    assert code == 2 and "optimizer=adam" in err and "obgd, adaptive_obgd" in err


# --- initialisation and networks ----------------------------------------------------------
def test_sparse_init_zeros_ceil_90_percent_of_each_units_inputs():
    pop = Population([0, 1])
    weight, bias = torch.empty(2, 32, 7), torch.empty(2, 1, 7)
    sparse_init_(weight, bias, pop, 0.9)
    nonzero_inputs = (weight != 0).sum(1)                         # per member and output unit
    assert (nonzero_inputs == 32 - math.ceil(0.9 * 32)).all()     # 29 of 32 zeroed
    assert weight.abs().max() <= 1 / math.sqrt(32) and (bias == 0).all()
    assert not torch.equal(weight[0], weight[1])                  # each member its own draw


def test_hand_gradients_equal_autograd():
    pop = Population([0, 1, 2])
    net = StreamMLP(pop, [5, 8, 8, 3], sparsity=0.5)
    x, grad_out = torch.randn(3, 2, 5), torch.randn(3, 1, 3)
    out, cache = net.trace(x)
    torch.testing.assert_close(out, net(x))
    net.backward(cache, grad_out)
    hand = net.flat.grad.clone()
    net.flat.grad = None
    (net(x)[:, :1] * grad_out).sum().backward()                   # row 0 only, as in learn()
    torch.testing.assert_close(hand, net.flat.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("discrete", [True, False])
def test_policy_objective_gradient_equals_autograd(discrete):
    torch.manual_seed(0)
    head = torch.randn(2, 1, 4, requires_grad=True)
    weight = torch.tensor([[0.01], [-0.01]])
    if discrete:
        action = torch.tensor([[1], [3]])
        objective, entropy, grad = softmax_objective(head, action, weight)
        dist = torch.distributions.Categorical(logits=head)
    else:
        action = torch.randn(2, 1, 2)
        objective, entropy, grad = gaussian_objective(head, action, weight)
        mean, pre_std = head.chunk(2, -1)
        normal = torch.distributions.Normal(mean, torch.nn.functional.softplus(pre_std))
        dist = torch.distributions.Independent(normal, 1)
    reference = dist.log_prob(action) + weight * dist.entropy()
    torch.testing.assert_close(objective, reference)
    torch.testing.assert_close(entropy, dist.entropy())
    reference.sum().backward()
    torch.testing.assert_close(grad, head.grad)


# --- running statistics ---------------------------------------------------------------------
def test_running_statistics_match_numpy_and_update_before_normalising():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(50, 2, 3)).astype(np.float32)      # 50 samples, 2 members
    take = rng.random((50, 2)) < 0.7
    take[:2] = True
    stats = RunningMeanVar(2, 3, torch.device("cpu"))
    assert stats.var.tolist() == [[1.0] * 3] * 2                          # fewer than two samples: var 1
    for x, m in zip(data, take):
        stats.update(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(m).unsqueeze(1))
    for member in range(2):
        kept = data[take[:, member], member]
        np.testing.assert_allclose(stats.mean[member], kept.mean(0), rtol=1e-5)
        np.testing.assert_allclose(stats.var[member], kept.var(0, ddof=1), rtol=1e-4)
    # the first observation normalises to 0: statistics take it in before normalising it
    first = RunningMeanVar(1, 3, torch.device("cpu"))
    x = torch.tensor([[[5.0, -2.0, 0.5]]])
    first.update(x)
    assert first.normalize(x).abs().max() == 0


def test_reward_scaler_divides_by_the_std_of_the_discounted_return_trace():
    scaler = RewardScaler(1, gamma=0.5, device=torch.device("cpu"))
    rewards, dones = [1.0, 2.0, 3.0, 4.0], [False, False, True, False]
    out, trace, traces = [], 0.0, []
    for r, d in zip(rewards, dones):
        out.append(scaler(torch.tensor([[r]]), torch.tensor([[d]])).item())
        trace = 0.5 * (1 - d) * trace + r                                   # restarts at r on the last step
        traces.append(trace)
    expected = [rewards[0] / math.sqrt(1 + 1e-8)] + [
        r / math.sqrt(np.var(traces[:k + 1], ddof=1) + 1e-8) for k, r in enumerate(rewards) if k > 0]
    assert out == pytest.approx(expected, rel=1e-5)
    assert traces == [1.0, 2.5, 3.0, 5.5]


def test_time_feature_counts_like_add_time_info():
    env = TimeFeature(envs.make("Pendulum-v1", 2))
    assert env.limit == 200 and env.observation_space.shape == (4,)
    obs = env.reset([0, 1])
    times = [obs[0, -1].item()]
    for _ in range(200):
        step = env.step(torch.zeros(2, 1))
        times.append(step.final_obs[0, -1].item())
    assert times[:3] == pytest.approx([-0.5, -0.5, -0.5 + 1 / 200])     # the official off-by-one
    assert times[200] == pytest.approx(-0.5 + 199 / 200)                  # the truncated episode's last
    assert step.truncated.all() and step.obs[:, -1].tolist() == [-0.5, -0.5]


# --- the streaming loop -----------------------------------------------------------------------
@pytest.mark.parametrize("truncation_is_terminal", [False, True])
def test_truncation_bootstraps_from_the_final_observation(tmp_path, truncation_is_terminal):
    session = session_for(tmp_path, "stream_td", "Pendulum", 401, f"truncation_is_terminal={truncation_is_terminal}")
    calls = []
    learn = session.agent.learn

    def spy(features, action, reward, next_features, terminal, reset):
        calls.append((next_features[0, 0, -1].item(), terminal.item(), reset.item(), features[0, 0, -1].item()))
        return learn(features, action, reward, next_features, terminal, reset)

    session.agent.learn = spy
    streaming.run(session)
    session.close()
    assert len(calls) == 401
    for index in (199, 399):                                             # Pendulum truncates every 200 steps
        next_time, terminal, reset, _ = calls[index]
        assert reset == 1.0 and terminal == float(truncation_is_terminal)
        assert next_time == pytest.approx(-0.5 + 199 / 200)              # s' is the final observation
        assert calls[index + 1][3] == -0.5                               # then the next episode starts
    assert sum(c[2] for c in calls) == 2 and sum(c[1] for c in calls) == (2 if truncation_is_terminal else 0)


def test_population_members_are_independent(tmp_path):
    pair = session_for(tmp_path / "pair", "stream_q", "CartPole", 300, seeds="0,1", batched=True)
    streaming.run(pair)
    lone = session_for(tmp_path / "lone", "stream_q", "CartPole", 300, seeds="1")
    streaming.run(lone)
    torch.testing.assert_close(pair.agent.q.flat[1], lone.agent.q.flat[0])
    torch.testing.assert_close(pair.agent.obs_stats.mean[1], lone.agent.obs_stats.mean[0])
    assert not torch.equal(pair.agent.q.flat[0], pair.agent.q.flat[1])
    pair.close(), lone.close()


@pytest.mark.parametrize("agent, env", [("stream_q", "CartPole"), ("stream_ac", "Pendulum")])
def test_resume_gives_identical_evaluations(run_cli, tmp_path, monkeypatch, agent, env):
    args = lambda out, *extra: ["run", agent, "--env", env, "--steps", "600", "--eval-every", "200",
                                "--eval-episodes", "2", "--out", out, "--quiet", "--set", "hidden_sizes=16,16", *extra]
    assert run_cli(*args(tmp_path / "straight"))[0] == 0
    original, calls = Session.save_checkpoint, {"n": 0}

    def interrupt_after_first_checkpoint(self, loop_state):
        original(self, loop_state)
        calls["n"] += 1
        raise KeyboardInterrupt

    monkeypatch.setattr(Session, "save_checkpoint", interrupt_after_first_checkpoint)
    assert run_cli(*args(tmp_path / "resumed"))[0] == 130
    monkeypatch.setattr(Session, "save_checkpoint", original)
    code, _, err = run_cli(*args(tmp_path / "resumed", "--resume"))
    assert code == 0, err
    label = next((tmp_path / "straight" / envs.resolve(env)).iterdir()).name
    read = lambda root: [line.rsplit(",", 1)[0] for line in
                         (root / envs.resolve(env) / label / "seed_0" / "evaluations.csv").read_text().splitlines()]
    assert read(tmp_path / "resumed") == read(tmp_path / "straight")


def test_stream_q_refuses_continuous_actions_and_the_loop_several_envs(run_cli, tmp_path):
    code, _, err = run_cli("run", "stream_q", "--env", "Pendulum", "--steps", "10", "--out", tmp_path)
    assert code == 2 and "stream_q needs a Discrete action space" in err
    code, _, err = run_cli("run", "stream_ac", "--env", "CartPole", "--steps", "10", "--num-envs", "2",
                           "--out", tmp_path / "b")
    assert code == 2 and "--num-envs 2" in err
    assert not (tmp_path / "b").exists()   # refused before any run record is written


# --- learning -------------------------------------------------------------------------------
def final_score(run_cli, tmp_path, agent, env, steps, eval_every, *overrides):
    code, _, err = run_cli("run", agent, "--env", env, "--steps", str(steps), "--eval-every", str(eval_every),
                           "--eval-episodes", "10", "--seed", "0", "--out", tmp_path, "--quiet", "--tag", "t",
                           *(["--set", *overrides] if overrides else []))
    assert code == 0, err
    meta = json.loads((tmp_path / envs.resolve(env) / "t" / "seed_0" / "run.json").read_text())
    return meta["final_score"]


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["obgd", "adaptive_obgd"])
def test_stream_q_learns_cartpole(run_cli, tmp_path, optimizer):
    # adaptive_obgd: 500 seen at 40k (seed 0)
    score = final_score(run_cli, tmp_path, "stream_q", "CartPole", 40_000, 10_000, f"optimizer={optimizer}")
    assert score >= 300, score           # random policy: 24 (envs/classic-discrete.toml); solved: 475


@pytest.mark.slow
def test_discrete_stream_ac_learns_cartpole(run_cli, tmp_path):
    score = final_score(run_cli, tmp_path, "stream_ac", "CartPole", 20_000, 10_000)
    assert score >= 300, score


@pytest.mark.slow
def test_continuous_stream_ac_learns_pendulum(run_cli, tmp_path):
    score = final_score(run_cli, tmp_path, "stream_ac", "Pendulum", 40_000, 10_000)
    assert score >= -700, score          # random policy: -1188 (envs/classic.toml)


class RandomWalk(gym.Env):
    """Sutton & Barto's random walk with actions: states 1..n, start in the middle, action 0 steps left,
    1 right; stepping off the left end gives -1, off the right end +1, otherwise 0. One-hot observations."""

    def __init__(self, n=9):
        self.n = n
        self.observation_space = gym.spaces.Box(0.0, 1.0, (n,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def _obs(self):
        return np.eye(self.n, dtype=np.float32)[self.state - 1]

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.state = (self.n + 1) // 2
        return self._obs(), {}

    def step(self, action):
        self.state += 1 if int(action) == 1 else -1
        if self.state in (0, self.n + 1):
            reward = 1.0 if self.state == self.n + 1 else -1.0
            self.state = max(1, min(self.n, self.state))
            return self._obs(), reward, True, False, {}
        return self._obs(), 0.0, False, False, {}

    @staticmethod
    def exact_values(n, gamma):
        """V under the uniform policy: V = r + gamma P V over the n non-terminal states."""
        p, r = np.zeros((n, n)), np.zeros(n)
        for s in range(n):
            for move in (-1, 1):
                nxt = s + move
                if 0 <= nxt < n:
                    p[s, nxt] += 0.5
                else:
                    r[s] += 0.5 * (1.0 if nxt == n else -1.0)
        return np.linalg.solve(np.eye(n) - gamma * p, r)


@pytest.mark.slow
def test_stream_td_predicts_random_walk_values(tmp_path):
    """With alpha = 1 each ObGD update moves V(s) a large way toward a one-sample target, so single
    iterates are noisy; their average over the second half of training must match the exact values."""
    gym.register("DrlbenchRandomWalk-v0", entry_point=RandomWalk, max_episode_steps=1000)
    envs._gymnasium_ids.cache_clear()
    try:
        n, steps = 9, 16_000
        session = session_for(tmp_path, "stream_td", "DrlbenchRandomWalk-v0", steps)
        obs = torch.cat([torch.eye(n), torch.full((n, 1), -0.5)], 1).unsqueeze(0)   # each state, time feature at t = 0
        snapshots, after_step = [], session.after_step

        def record(loop_state):
            after_step(loop_state)
            if session.step > steps // 2 and session.step % 50 == 0:
                snapshots.append(session.agent.predict(obs)[0].numpy())

        session.after_step = record
        streaming.run(session)
        session.close()
        predicted = np.mean(snapshots, 0)
        exact = RandomWalk.exact_values(n, session.agent.config.gamma)
        rmse = float(np.sqrt(np.mean((predicted - exact) ** 2)))
        # predicting 0 everywhere: RMSE = rms(exact) = 0.50
        assert rmse <= 0.1, (rmse, predicted, exact)
        assert np.corrcoef(predicted, exact)[0, 1] >= 0.95
    finally:
        gym.registry.pop("DrlbenchRandomWalk-v0", None)
        envs._gymnasium_ids.cache_clear()
