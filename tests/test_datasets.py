"""Offline datasets: D4RL HDF5 read with qlearning_dataset semantics (expected transitions written
by hand for tiny files built with h5py directly), D4RL and Minari round trips, bad files as
one-line UsageErrors, and the D4RL normalised score."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from gymnasium import spaces

h5py = pytest.importorskip("h5py", reason="D4RL HDF5 files need h5py")

from drlbench.datasets import (
    OfflineDataset, dataset_info, load_d4rl_hdf5, load_minari, normalized_score, save_d4rl_hdf5,
    save_minari, validate,
)
from drlbench.errors import UsageError

# A 9-row raw file: obs[i] = (i, 10 i), action[i] = 0.1 i, reward[i] = i + 1.
# Episode A = rows 0-2 (time-out at 2), B = rows 3-4 (terminal at 4), C = rows 5-7 (time-out at 7),
# D = row 8 (unfinished, last row of the file).
N_ROWS = 9
OBS = np.array([[i, 10 * i] for i in range(N_ROWS)], dtype=np.float32)
ACT = np.array([[0.1 * i] for i in range(N_ROWS)], dtype=np.float32)
REW = np.arange(1, N_ROWS + 1, dtype=np.float32)
TERM = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
TIMEOUT = np.array([0, 0, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
# The stored successor: obs[i+1] inside an episode, the true final observation at its end rows.
NEXT_OBS = np.array([[1, 10], [2, 20], [102, 102], [4, 40], [104, 104], [6, 60], [7, 70],
                     [107, 107], [108, 108]], dtype=np.float32)


def write_raw(path, **columns):
    """An HDF5 file in the D4RL layout, written with h5py directly (not the code under test)."""
    with h5py.File(path, "w") as f:
        for key, value in columns.items():
            f.create_dataset(key, data=value)
    return path


def standard_file(path, **overrides):
    columns = dict(observations=OBS, actions=ACT, rewards=REW[:, None], terminals=TERM[:, None],
                   timeouts=TIMEOUT)
    columns.update(overrides)
    return write_raw(path, **{k: v for k, v in columns.items() if v is not None})


def as_np(t: torch.Tensor) -> np.ndarray:
    return t.numpy()


# ---------------------------------------------------------------- qlearning_dataset semantics

def test_timeouts_without_next_observations(tmp_path):
    ds = load_d4rl_hdf5(standard_file(tmp_path / "d.hdf5"))
    # rows 0..7 (last row dropped) minus the time-out rows 2 and 7
    np.testing.assert_array_equal(as_np(ds.observations),
                                  [[0, 0], [1, 10], [3, 30], [4, 40], [5, 50], [6, 60]])
    # row 4 is a terminal: D4RL pairs it with row 5, the next episode's first observation
    np.testing.assert_array_equal(as_np(ds.next_observations),
                                  [[1, 10], [2, 20], [4, 40], [5, 50], [6, 60], [7, 70]])
    np.testing.assert_allclose(as_np(ds.actions), [[0.0], [0.1], [0.3], [0.4], [0.5], [0.6]],
                               rtol=1e-6)
    np.testing.assert_array_equal(as_np(ds.rewards), [1, 2, 4, 5, 6, 7])
    np.testing.assert_array_equal(as_np(ds.terminals), [0, 0, 0, 1, 0, 0])
    for t in (ds.observations, ds.actions, ds.rewards, ds.next_observations, ds.terminals):
        assert t.dtype == torch.float32 and t.device.type == "cpu"
    assert (ds.size, len(ds), ds.obs_dim, ds.act_dim) == (6, 6, 2, 1)
    # A = 1+2+3, B = 4+5, C = 6+7+8; D (row 8) is unfinished and left out
    np.testing.assert_array_equal(ds.episode_returns, [6.0, 9.0, 21.0])
    assert ds.episode_returns.dtype == np.float64
    np.testing.assert_array_equal(ds.episode_lengths, [3, 2, 3])
    assert ds.timeouts_count == 2
    assert ds.metadata["format"] == "d4rl-hdf5" and ds.metadata["raw_rows"] == 9
    assert len(ds.metadata["sha256"]) == 64 and ds.metadata["source"].endswith("d.hdf5")


def test_next_observations_present_are_ignored_like_d4rl(tmp_path):
    ds = load_d4rl_hdf5(standard_file(tmp_path / "d.hdf5", next_observations=NEXT_OBS))
    np.testing.assert_array_equal(as_np(ds.observations),
                                  [[0, 0], [1, 10], [3, 30], [4, 40], [5, 50], [6, 60]])
    np.testing.assert_array_equal(as_np(ds.next_observations),
                                  [[1, 10], [2, 20], [4, 40], [5, 50], [6, 60], [7, 70]])
    np.testing.assert_array_equal(as_np(ds.terminals), [0, 0, 0, 1, 0, 0])
    assert ds.metadata["has_next_observations"] is True
    assert ds.metadata["next_observation_mismatches"] == 1   # the terminal row 4


def test_stored_next_observations_on_request(tmp_path):
    ds = load_d4rl_hdf5(standard_file(tmp_path / "d.hdf5", next_observations=NEXT_OBS),
                        use_stored_next_observations=True)
    np.testing.assert_array_equal(as_np(ds.next_observations),
                                  [[1, 10], [2, 20], [4, 40], [104, 104], [6, 60], [7, 70]])
    np.testing.assert_array_equal(as_np(ds.rewards), [1, 2, 4, 5, 6, 7])


def test_terminate_on_end_keeps_timeout_rows_but_not_as_terminals(tmp_path):
    ds = load_d4rl_hdf5(standard_file(tmp_path / "d.hdf5"), terminate_on_end=True)
    np.testing.assert_array_equal(as_np(ds.rewards), [1, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(as_np(ds.terminals), [0, 0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(as_np(ds.next_observations)[2], [3, 30])


def test_row_that_is_terminal_and_timeout_is_dropped(tmp_path):
    term = TERM.copy()
    term[2] = True     # row 2 is now both a terminal and a time-out
    ds = load_d4rl_hdf5(standard_file(tmp_path / "d.hdf5", terminals=term))
    np.testing.assert_array_equal(as_np(ds.rewards), [1, 2, 4, 5, 6, 7])
    np.testing.assert_array_equal(as_np(ds.terminals), [0, 0, 0, 1, 0, 0])


def test_no_timeouts_key_no_fallback(tmp_path):
    # 7 rows, terminal at row 2, no `timeouts` key: only the last row is dropped
    path = standard_file(tmp_path / "d.hdf5", observations=OBS[:7], actions=ACT[:7],
                         rewards=REW[:7], terminals=np.array([0, 0, 1, 0, 0, 0, 0]), timeouts=None)
    ds = load_d4rl_hdf5(path)
    np.testing.assert_array_equal(as_np(ds.rewards), [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(as_np(ds.terminals), [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(as_np(ds.next_observations)[2], [3, 30])
    np.testing.assert_array_equal(ds.episode_returns, [6.0])
    np.testing.assert_array_equal(ds.episode_lengths, [3])
    assert ds.timeouts_count == 0 and ds.metadata["has_timeouts"] is False


def test_no_timeouts_key_max_episode_steps_fallback(tmp_path):
    # 10 rows, terminal at row 1, max_episode_steps 3. D4RL's counter: after the terminal it
    # restarts at 1, so the next episode times out after 2 steps (row 3); then rows 6 and 9.
    rows = 10
    obs = np.array([[i, 10 * i] for i in range(rows)], dtype=np.float32)
    path = write_raw(tmp_path / "d.hdf5", observations=obs, actions=np.zeros((rows, 1)),
                     rewards=np.arange(1, rows + 1, dtype=np.float32),
                     terminals=np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0]))
    ds = load_d4rl_hdf5(path, max_episode_steps=3)
    np.testing.assert_array_equal(as_np(ds.rewards), [1, 2, 3, 5, 6, 8, 9])   # rows 0,1,2,4,5,7,8
    np.testing.assert_array_equal(as_np(ds.terminals), [0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(as_np(ds.next_observations)[:, 0], [1, 2, 3, 5, 6, 8, 9])
    np.testing.assert_array_equal(ds.episode_returns, [3.0, 7.0, 18.0, 27.0])
    np.testing.assert_array_equal(ds.episode_lengths, [2, 2, 3, 3])
    assert ds.timeouts_count == 3


def test_terminal_on_last_row_closes_the_episode(tmp_path):
    term = TERM.copy()
    term[8] = True
    ds = load_d4rl_hdf5(standard_file(tmp_path / "d.hdf5", terminals=term))
    assert ds.size == 6                                   # the last row is still dropped
    np.testing.assert_array_equal(ds.episode_returns, [6.0, 9.0, 21.0, 9.0])
    np.testing.assert_array_equal(ds.episode_lengths, [3, 2, 3, 1])


def test_metadata_group_is_read_as_plain_values(tmp_path):
    path = standard_file(tmp_path / "d.hdf5")
    with h5py.File(path, "a") as f:
        f["metadata/algorithm"] = b"SAC"
        f["metadata/policy/fc0/weight"] = np.zeros((40, 30), np.float32)
        f["metadata/policy/fc0/bias"] = np.arange(3, dtype=np.float32)
        f["metadata"].attrs["iteration"] = np.int64(5)
        f["infos/qpos"] = np.zeros((N_ROWS, 3))
    meta = load_d4rl_hdf5(path).metadata
    assert meta["algorithm"] == "SAC"
    assert meta["iteration"] == 5 and type(meta["iteration"]) is int
    assert meta["policy/fc0/bias"] == [0.0, 1.0, 2.0]
    assert meta["policy/fc0/weight"] == "<float32 array of shape (40, 30)>"


# ---------------------------------------------------------------- dataset helpers

def test_state_mean_std_info_and_to(tmp_path):
    ds = load_d4rl_hdf5(standard_file(tmp_path / "d.hdf5"))
    mean, std = ds.state_mean_std()
    obs0 = np.array([0, 1, 3, 4, 5, 6], dtype=np.float64)      # first column of the kept obs
    expected_std0 = np.sqrt(((obs0 - obs0.mean()) ** 2).mean()) + 1e-3   # population std
    assert mean[0].item() == pytest.approx(19 / 6, rel=1e-6)
    assert mean[1].item() == pytest.approx(190 / 6, rel=1e-6)
    assert std[0].item() == pytest.approx(expected_std0, rel=1e-6)
    assert std.shape == (2,) and std.dtype == torch.float32

    info = dataset_info(ds)
    assert info["transitions"] == 6 and info["episodes"] == 3
    assert info["terminals"] == 1 and info["timeouts"] == 2
    assert (info["obs_dim"], info["act_dim"]) == (2, 1)
    assert info["return_mean"] == pytest.approx(12.0)
    assert info["return_std"] == pytest.approx(np.sqrt(((6 - 12) ** 2 + (9 - 12) ** 2 + 81) / 3))
    assert (info["return_min"], info["return_max"]) == (6.0, 21.0)

    moved = ds.to("cpu")
    assert isinstance(moved, OfflineDataset) and moved.size == ds.size
    assert torch.equal(moved.observations, ds.observations)


# ---------------------------------------------------------------- D4RL writer

def test_d4rl_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(N_ROWS, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(N_ROWS, 2)).astype(np.float32)
    rew = rng.normal(size=N_ROWS).astype(np.float32)
    qpos = rng.normal(size=(N_ROWS, 4))
    meta = {"algorithm": "SAC", "iteration": 7, "deterministic": False,
            "policy": {"hidden": [256, 256], "names": ["fc0", "fc1"]}}
    path = save_d4rl_hdf5(tmp_path / "sub" / "rt.hdf5", obs, act, rew, TERM, TIMEOUT,
                          next_observations=obs + 1, infos={"qpos": qpos}, metadata=meta,
                          compression="gzip")
    assert [p.name for p in path.parent.iterdir()] == ["rt.hdf5"]     # no temporary left
    with h5py.File(path) as f:
        assert f["observations"].dtype == np.float32 and f["observations"].compression == "gzip"
        assert f["terminals"].dtype == bool and f["timeouts"].shape == (N_ROWS,)
        np.testing.assert_array_equal(f["infos/qpos"][()], qpos)

    ds = load_d4rl_hdf5(path)
    kept = [0, 1, 3, 4, 5, 6]
    np.testing.assert_array_equal(as_np(ds.observations), obs[kept])
    np.testing.assert_array_equal(as_np(ds.next_observations), obs[[1, 2, 4, 5, 6, 7]])
    np.testing.assert_array_equal(as_np(ds.actions), act[kept])
    np.testing.assert_array_equal(as_np(ds.rewards), rew[kept])
    np.testing.assert_array_equal(as_np(ds.terminals), [0, 0, 0, 1, 0, 0])
    ep = rew.astype(np.float64)
    np.testing.assert_allclose(ds.episode_returns, [ep[0:3].sum(), ep[3:5].sum(), ep[5:8].sum()])
    for key, value in {"algorithm": "SAC", "iteration": 7, "deterministic": False,
                       "policy/hidden": [256, 256], "policy/names": ["fc0", "fc1"]}.items():
        assert ds.metadata[key] == value


def test_d4rl_writer_failure_keeps_old_file(tmp_path):
    path = save_d4rl_hdf5(tmp_path / "rt.hdf5", OBS, ACT, REW, TERM, TIMEOUT)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_d4rl_hdf5(path, OBS, ACT, REW, TERM, TIMEOUT, metadata={"bad": None})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rt.hdf5"]
    with pytest.raises(UsageError, match="observations 9, actions 8"):
        save_d4rl_hdf5(path, OBS, ACT[:8], REW, TERM, TIMEOUT)


# ---------------------------------------------------------------- Minari

def minari_episodes():
    """Three Pendulum-shaped episodes: terminated (T=3), truncated (T=2), neither (T=1)."""
    return [
        dict(observations=[[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]],
             actions=[[0.5], [-0.5], [1.0]], rewards=[1.0, 2.0, 3.0],
             terminations=[0, 0, 1], truncations=[0, 0, 0]),
        dict(observations=[[10, 10, 10], [11, 11, 11], [12, 12, 12]],
             actions=[[0.25], [-2.0]], rewards=[-1.0, -2.0],
             terminations=[0, 0], truncations=[0, 1]),
        dict(observations=[[20, 20, 20], [21, 21, 21]], actions=[[2.0]], rewards=[0.5],
             terminations=[0], truncations=[0]),
    ]


def test_minari_round_trip(tmp_path, monkeypatch):
    pytest.importorskip("minari", reason="minari is not installed")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "elsewhere"))
    root = tmp_path / "minari"
    target = save_minari("drlbench/pendulum/tiny-v0", minari_episodes(), env_id="Pendulum-v1",
                         root=root, ref_min_score=-1000.0, ref_max_score=0.0,
                         algorithm_name="hand", author="tests")
    assert target == root / "drlbench/pendulum/tiny-v0" and (target / "data").is_dir()
    assert os.environ["MINARI_DATASETS_PATH"] == str(tmp_path / "elsewhere")   # restored

    for source in ("drlbench/pendulum/tiny-v0", "drlbench/pendulum/tiny", target):
        ds = load_minari(source, root=root)
        np.testing.assert_array_equal(as_np(ds.observations),
                                      [[0] * 3, [1] * 3, [2] * 3, [10] * 3, [11] * 3, [20] * 3])
        np.testing.assert_array_equal(as_np(ds.next_observations),
                                      [[1] * 3, [2] * 3, [3] * 3, [11] * 3, [12] * 3, [21] * 3])
        np.testing.assert_array_equal(as_np(ds.actions), [[0.5], [-0.5], [1.0], [0.25], [-2.0], [2.0]])
        np.testing.assert_array_equal(as_np(ds.rewards), [1, 2, 3, -1, -2, 0.5])
        np.testing.assert_array_equal(as_np(ds.terminals), [0, 0, 1, 0, 0, 0])   # truncation != terminal
        np.testing.assert_array_equal(ds.episode_returns, [6.0, -3.0, 0.5])
        np.testing.assert_array_equal(ds.episode_lengths, [3, 2, 1])
        assert ds.timeouts_count == 1
        assert ds.metadata["format"] == "minari" and len(ds.metadata["sha256"]) == 64
        assert ds.metadata["dataset_id"] == "drlbench/pendulum/tiny-v0"
        assert (ds.metadata["ref_min_score"], ds.metadata["ref_max_score"]) == (-1000.0, 0.0)
        assert "Pendulum-v1" in ds.metadata["env_spec"]

    # the minari package itself reads what we wrote
    import minari
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    theirs = minari.load_dataset("drlbench/pendulum/tiny-v0", download=False)
    assert theirs.total_episodes == 3 and theirs.total_steps == 6
    validate(ds, theirs.observation_space, theirs.action_space)

    with pytest.raises(UsageError, match="already exists"):
        save_minari("drlbench/pendulum/tiny-v0", minari_episodes(), env_id="Pendulum-v1", root=root)


def test_minari_missing_dataset_never_downloads(tmp_path):
    pytest.importorskip("minari", reason="minari is not installed")
    with pytest.raises(UsageError, match="never downloads") as err:
        load_minari("mujoco/hopper/medium-v0", root=tmp_path)
    assert "\n" not in str(err.value)


def test_minari_bad_episode_is_rejected_before_writing(tmp_path):
    pytest.importorskip("minari", reason="minari is not installed")
    episodes = minari_episodes()
    episodes[1]["observations"] = episodes[1]["observations"][:2]    # T, not T+1
    with pytest.raises(UsageError, match="episode 1"):
        save_minari("drlbench/pendulum/bad-v0", episodes, env_id="Pendulum-v1", root=tmp_path)
    assert not (tmp_path / "drlbench/pendulum/bad-v0").exists()


# ---------------------------------------------------------------- bad files

def assert_one_line_error(path, match, **kwargs):
    with pytest.raises(UsageError, match=match) as err:
        load_d4rl_hdf5(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message and path.name in message
    return message


def test_missing_key(tmp_path):
    assert_one_line_error(standard_file(tmp_path / "d.hdf5", actions=None), "missing key 'actions'")


def test_different_lengths(tmp_path):
    assert_one_line_error(standard_file(tmp_path / "d.hdf5", actions=ACT[:8]),
                    "different lengths: observations 9, actions 8, rewards 9, terminals 9, timeouts 9")


@pytest.mark.parametrize("key, row, value", [("rewards", 3, np.nan), ("observations", 5, np.inf),
                                             ("actions", 0, -np.inf)])
def test_non_finite(tmp_path, key, row, value):
    columns = {"observations": OBS.copy(), "actions": ACT.copy(), "rewards": REW.copy()}
    columns[key][row] = value
    assert_one_line_error(standard_file(tmp_path / "d.hdf5", **columns),
                    f"'{key}' has a non-finite value .* at row {row}")


def test_empty_and_one_row(tmp_path):
    empty = dict(observations=np.zeros((0, 2)), actions=np.zeros((0, 1)), rewards=np.zeros(0),
                 terminals=np.zeros(0), timeouts=np.zeros(0))
    assert_one_line_error(write_raw(tmp_path / "empty.hdf5", **empty), "empty")
    one = dict(observations=OBS[:1], actions=ACT[:1], rewards=REW[:1], terminals=TERM[:1])
    assert_one_line_error(write_raw(tmp_path / "one.hdf5", **one), "no transitions")


def test_not_hdf5_and_truncated(tmp_path):
    text = tmp_path / "notes.hdf5"
    text.write_text("observations,actions\n1,2\n")
    assert_one_line_error(text, "not a readable HDF5 file")
    good = standard_file(tmp_path / "good.hdf5")
    truncated = tmp_path / "cut.hdf5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert_one_line_error(truncated, "not a readable HDF5 file")
    assert_one_line_error(tmp_path / "absent.hdf5", "no such file")


def test_flags_must_be_zero_or_one(tmp_path):
    assert_one_line_error(standard_file(tmp_path / "d.hdf5", terminals=np.array([0, 0, 2, 0, 0, 0, 0, 0, 0])),
                    "'terminals' holds 2 at row 2; expected 0/1")


def test_validate_against_spaces(tmp_path):
    ds = load_d4rl_hdf5(standard_file(tmp_path / "d.hdf5"))
    obs_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    validate(ds, obs_space, spaces.Box(-1, 1, (1,), np.float32))
    with pytest.raises(UsageError, match=r"observation dim 2 does not match .* shape \(3,\)") as err:
        validate(ds, spaces.Box(-1, 1, (3,), np.float32), None)
    assert "d.hdf5" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UsageError, match=r"action dim 1 does not match .* shape \(2,\)"):
        validate(ds, obs_space, spaces.Box(-1, 1, (2,), np.float32))
    # kept actions are 0, .1, .3, .4, .5, .6: transition 3 (0.4) is the first above 0.35
    with pytest.raises(UsageError, match=r"action 0\.4 at transition 3, dim 0 is outside the "
                                         r"action space bounds \[-0\.35, 0\.35\]"):
        validate(ds, obs_space, spaces.Box(-0.35, 0.35, (1,), np.float32))


# ---------------------------------------------------------------- normalised score

def test_normalized_score_hopper():
    # 100 * (1500 - (-20.272305)) / (3234.3 - (-20.272305)) = 152027.2305 / 3254.572305
    assert normalized_score("hopper-medium-v2", 1500.0) == pytest.approx(46.71189214829873, rel=1e-12)
    assert normalized_score("Hopper-Medium-Replay-v0", 3234.3) == pytest.approx(100.0)
    scores = normalized_score("hopper-expert-v1", [-20.272305, 3234.3])
    np.testing.assert_allclose(scores, [0.0, 100.0], atol=1e-12)
    assert normalized_score("antmaze-umaze-v2", 0.7) == pytest.approx(70.0)
    assert normalized_score("kitchen-mixed-v0", 2.0) == pytest.approx(50.0)
    for not_d4rl in ("Hopper-v5", "mujoco/hopper/medium-v0", "maze2d-umaze-dense-v1",
                     "hopper-full-replay-v0", "CartPole-v1"):
        assert normalized_score(not_d4rl, 100.0) is None
