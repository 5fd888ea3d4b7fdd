"""Offline-RL datasets: D4RL HDF5 files and Minari datasets as `OfflineDataset` transitions with
D4RL `qlearning_dataset` semantics, validation, and D4RL normalised scores."""
from .core import OfflineDataset, dataset_info
from .d4rl import load_d4rl_hdf5, save_d4rl_hdf5
from .minari_format import load_minari, save_minari
from .reference import D4RL_REF_SCORES, d4rl_reference, normalized_score
from .registry import QUALITIES, data_folder, dataset_name, evaluation_env, load, locate
from .validate import validate

__all__ = [
    "OfflineDataset", "dataset_info", "load_d4rl_hdf5", "save_d4rl_hdf5", "load_minari",
    "save_minari", "validate", "normalized_score", "d4rl_reference", "D4RL_REF_SCORES",
    "QUALITIES", "data_folder", "dataset_name", "evaluation_env", "load", "locate",
]
