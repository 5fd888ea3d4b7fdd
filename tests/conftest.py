import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("PYTHONHASHSEED", "0")


@pytest.fixture
def run_cli(tmp_path, capsys):
    """Call `drlbench ...` in-process; returns (exit code, stdout, stderr)."""
    from drlbench.cli import main

    def call(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return call
