"""Offline agents learn: datasets collected here by the D4RL recipe (a small SAC behaviour run on
Pendulum), then each offline agent against behaviour cloning on the same data, two seeds each.
The published offline leaderboard (results/, BENCHMARKS.md) uses the full suite budgets."""
import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow
SMALL = ["--set", "hidden_sizes=[64,64]"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """pendulum-medium-replay and pendulum-medium-expert from one 6k-step SAC behaviour run."""
    import os

    from drlbench.cli import main

    folder = tmp_path_factory.mktemp("data")
    os.environ["DRLBENCH_DATA"] = str(folder)
    behaviour = ["--steps", "6000", "--eval-every", "250", "--quiet", "--set", "learning_starts=1000",
                 "random_steps=1000", "hidden_sizes=[64,64]"]
    assert main(["dataset", "collect", "--env", "Pendulum", "--quality", "medium-replay", *behaviour]) == 0
    assert main(["dataset", "collect", "--env", "Pendulum", "--quality", "medium-expert", "--transitions", "5000",
                 *behaviour]) == 0
    yield folder
    del os.environ["DRLBENCH_DATA"]


def mean_final(run_cli, tmp_path, agent, dataset, steps, small=SMALL):
    code, _, err = run_cli("run", agent, "--env", dataset, "--steps", steps, "--eval-every", steps, "--seeds", "0-1",
                           "--batched", "--out", tmp_path, "--tag", agent, "--quiet", *small)
    assert code == 0, err
    finals = [json.loads(p.read_text())["final_score"] for p in tmp_path.glob(f"{dataset}/{agent}/seed_*/run.json")]
    assert len(finals) == 2
    return float(np.mean(finals))


def test_iql_beats_bc_on_medium_replay(run_cli, tmp_path, data):
    # measured: IQL -971 / -1087 vs BC -1298 / -1509 (random policy -1188; the data's mean return -1314)
    bc = mean_final(run_cli, tmp_path, "bc", "pendulum-medium-replay", "3000")
    iql = mean_final(run_cli, tmp_path, "iql", "pendulum-medium-replay", "3000")
    assert iql > bc + 100, (iql, bc)


def test_prdc_beats_bc_on_medium_replay(run_cli, tmp_path, data):
    # beta = 2 (the offline-classic suite's); with beta = 1 PRDC measured -840 / -954 vs BC -1298 / -1509
    bc = mean_final(run_cli, tmp_path, "bc", "pendulum-medium-replay", "3000")
    prdc = mean_final(run_cli, tmp_path, "prdc", "pendulum-medium-replay", "5000")
    assert prdc > bc + 100, (prdc, bc)


def test_td3_bc_at_least_bc_on_medium_expert(run_cli, tmp_path, data):
    # measured: TD3+BC -432 / -777 vs BC -493 / -861 (mean -605 vs -677). TD3+BC's strong behaviour term
    # (alpha 2.5) keeps it near BC on these small datasets (and on pendulum-medium-replay: BENCHMARKS.md),
    # so this asserts "not worse than BC" with a margin for float rounding across CPUs, not a clear win.
    bc = mean_final(run_cli, tmp_path, "bc", "pendulum-medium-expert", "5000")
    td3_bc = mean_final(run_cli, tmp_path, "td3_bc", "pendulum-medium-expert", "5000")
    assert td3_bc > bc - 50, (td3_bc, bc)


def test_a2pr_beats_bc_on_medium_replay(run_cli, tmp_path, data):
    # A2PR's own networks (actor 3 x 256, critics 4 x 256, VAE 750-750) scaled down as SMALL does for the others
    small = ["--set", "actor_hidden_sizes=[64,64]", "critic_hidden_sizes=[64,64]", "value_hidden_sizes=[64,64]",
             "vae_hidden_sizes=[128,128]"]
    bc = mean_final(run_cli, tmp_path, "bc", "pendulum-medium-replay", "3000")
    a2pr = mean_final(run_cli, tmp_path, "a2pr", "pendulum-medium-replay", "5000", small)
    assert a2pr > bc + 100, (a2pr, bc)
