"""The report's LLM section reads llm_evaluations.csv and picks its columns from what the task records."""
from __future__ import annotations

import csv
from types import SimpleNamespace

from drlbench import report_llm


def _run(tmp_path, env_id, label, seed, rows):
    path = tmp_path / env_id.replace(":", "_") / label / f"seed_{seed}"
    path.mkdir(parents=True)
    with open(path / "llm_evaluations.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return SimpleNamespace(env_id=env_id, label=label, seed=seed, path=path)


def test_verifiable_and_game_tasks_get_their_own_columns(tmp_path):
    arith = lambda s: [{"step": 0, "score": 0.25, "success_train": 0.25, "success_test": 0.05, "pass_k_train": 0.8,   # noqa: E731
                        "pass_k_test": 0.3, "reward": 0.25, "kl": 0.0, "entropy": 2.0, "length": 1.0,
                        "ref_success_train": 0.25},
                       {"step": 10, "score": s, "success_train": s, "success_test": 0.06, "pass_k_train": 0.9,
                        "pass_k_test": 0.3, "reward": s, "kl": 0.4, "entropy": 1.5, "length": 1.0,
                        "ref_success_train": 0.25}]
    game = lambda s, e: [{"step": 10, "score": s, "reward": 0.5, "kl": 0.1, "regret": 0.3, "regret_ref": 0.5,   # noqa: E731
                          "win_rate": 0.55, "length": 3.0, "ref_length": 2.9, "kl_star": 0.6,
                          "exploitability": e, "duality_gap": 0.07}]
    plain = [{"step": 10, "score": 0.4, "reward": 0.5, "kl": 0.1, "regret": 0.3, "regret_ref": 0.5, "win_rate": 0.55,
              "length": 3.0, "ref_length": 2.9, "kl_star": 0.6}]
    runs = [_run(tmp_path, "llm:arith", "grpo", 0, arith(0.6)), _run(tmp_path, "llm:arith", "grpo", 1, arith(0.8)),
            _run(tmp_path, "llm:arith", "rloo", 0, arith(0.9)),
            _run(tmp_path, "llm:bt-seq-intransitive", "sppo", 0, game(0.3, 0.1)),
            _run(tmp_path, "llm:bt-seq-intransitive", "dpo", 0, game(0.2, 0.2)),
            _run(tmp_path, "llm:bt-seq", "dpo", 0, plain)]
    sections = {env: (header, rows) for env, header, rows, _ in report_llm.llm_section(SimpleNamespace(runs=runs))}
    header, rows = sections["llm:arith"]
    assert header[:4] == ("agent", "seeds", "pass@1 train", "pass@1 held-out") and "regret" not in header
    assert [r[0] for r in rows] == ["rloo", "grpo"]                       # ranked by mean score
    assert rows[1][1] == 2 and rows[1][2].startswith("0.700 ± 0.141")    # mean ± std of the two seeds' finals
    header, rows = sections["llm:bt-seq-intransitive"]
    assert "exploitability" in header and "duality gap" in header
    assert rows[0][header.index("exploitability")] == "0.100"
    header, _ = sections["llm:bt-seq"]
    assert "regret" in header and "exploitability" not in header         # records without game columns
    assert report_llm._note(sections["llm:arith"][0]) == report_llm.VERIFIABLE_NOTE
