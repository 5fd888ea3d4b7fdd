"""LLM track learns (slow): on task A (llm:bt-seq), DPO and IPO with their shipped presets cut the
exact regret to the KL-regularised optimum well below the reference policy's, two seeds as one
population, 300 gradient steps (well under a minute of CPU each on an idle core)."""
import csv

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One reference cache for the module (SFT once per seed)."""
    import os

    folder = tmp_path_factory.mktemp("llm-data")
    os.environ["DRLBENCH_DATA"] = str(folder)
    yield folder
    del os.environ["DRLBENCH_DATA"]


@pytest.mark.parametrize("agent", ["dpo", "ipo"])
def test_regret_well_below_the_reference(agent, run_cli, tmp_path, data):
    # measured (seeds 0, 1; 300 steps): regret/regret(pi_ref) DPO 0.226 / 0.450, IPO 0.436 / 0.518
    code, _, err = run_cli("run", agent, "--env", "llm:bt-seq", "--steps", "300", "--eval-every", "100",
                           "--seeds", "0-1", "--batched", "--out", tmp_path, "--quiet")
    assert code == 0, err
    ratios = []
    for seed in (0, 1):
        with open(tmp_path / "llm:bt-seq" / agent / f"seed_{seed}" / "llm_evaluations.csv") as f:
            last = list(csv.DictReader(f))[-1]
        assert int(last["step"]) == 300
        ratios.append(float(last["regret"]) / float(last["regret_ref"]))
    assert max(ratios) < 0.75 and sum(ratios) / 2 < 0.6, ratios
