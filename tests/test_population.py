"""Seeds as a batch dimension: members are independent, and a member equals a lone run."""
import pytest
import torch

from drlbench.buffer import ReplayBuffer
from drlbench.population import Population
from tests.test_losses import make_agent, tiny_batch


def params_of(agent, member):
    """Member `member`'s slice of every parameter (twin critics hold 2 rows per member)."""
    out = {}
    for name, p in agent.named_parameters():
        per_member = p.shape[0] // agent.population.size
        out[name] = p.detach()[member * per_member:(member + 1) * per_member].clone()
    return out


@pytest.mark.parametrize("name", ["sac", "td3"])
def test_member_update_ignores_other_members_data(name):
    batch_a, batch_b = tiny_batch(p=2, seed=1), tiny_batch(p=2, seed=1)
    other = tiny_batch(p=2, seed=99)
    for field in ("obs", "action", "reward", "next_obs"):      # change member 1's data only
        getattr(batch_b, field)[1] = getattr(other, field)[1]
    agents = []
    for batch in (batch_a, batch_b):
        agent = make_agent(name, seeds=(0, 1))
        for _ in range(3):
            agent.update(batch)
        agents.append(agent)
    member0 = [params_of(a, 0) for a in agents]
    member1 = [params_of(a, 1) for a in agents]
    for key in member0[0]:
        assert torch.equal(member0[0][key], member0[1][key]), key
    # member 1 did train on different data, so the comparison above could have failed
    assert any(not torch.equal(member1[0][k], member1[1][k]) for k in member1[0])


@pytest.mark.parametrize("name", ["sac", "td3"])
def test_member_equals_a_lone_run_with_the_same_seed(name):
    batched = make_agent(name, seeds=(5, 7))
    lone = make_agent(name, seeds=(7,))
    batch = tiny_batch(p=2, seed=3)
    lone_batch = tiny_batch(p=1, seed=3)
    for field in ("obs", "action", "reward", "next_obs", "terminated"):
        setattr(lone_batch, field, getattr(batch, field)[1:].clone())
    for _ in range(3):
        batched.update(batch)
        lone.update(lone_batch)
    member, alone = params_of(batched, 1), params_of(lone, 0)
    for key in member:
        assert torch.allclose(member[key], alone[key], atol=1e-6), key


def test_buffer_samples_each_member_from_its_own_rows():
    pop = Population([0, 1])
    buffer = ReplayBuffer(pop, capacity=8, obs_dim=1, action_dim=1)
    for t in range(10):   # wraps around: rows hold steps 2..9
        obs = torch.tensor([[[float(t)]], [[100.0 + t]]])
        buffer.add(obs, torch.zeros(2, 1, 1), torch.zeros(2, 1), obs + 1, torch.zeros(2, 1))
    batch = buffer.sample(64)
    assert buffer.size == 8
    assert batch.obs[0].min() >= 2 and batch.obs[0].max() <= 9
    assert batch.obs[1].min() >= 102 and batch.obs[1].max() <= 109
    assert torch.equal(batch.next_obs, batch.obs + 1)
