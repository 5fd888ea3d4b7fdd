"""Run records: the only thing statistics and reports ever read.

One directory per (env, label, seed): `OUT/<env_id>/<label>/seed_<seed>/` holding
- `run.json`: what ran (agent, env, seed, resolved hyperparameters, versions, host, commit),
  when, and how it ended (`status`: running | completed | failed | interrupted, `error`,
  `final_score`);
- `evaluations.csv`: `step,return_mean,return_std,episodes,length_mean,wall_time_s`, one row
  per evaluation (deterministic policy, `episodes` episodes on separate evaluation envs).
Every file is written to a temporary name and renamed, so a reader never sees half a file.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import platform
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from drlbench.errors import UsageError

EVAL_COLUMNS = ["step", "return_mean", "return_std", "episodes", "length_mean", "wall_time_s"]
FORMAT_VERSION = 1


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def versions() -> dict[str, str]:
    import gymnasium

    import drlbench

    found = {"drlbench": drlbench.__version__, "python": platform.python_version(),
             "torch": torch.__version__, "gymnasium": gymnasium.__version__}
    try:
        import mujoco

        found["mujoco"] = mujoco.__version__
    except ImportError:
        pass
    return found


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def host() -> dict[str, Any]:
    info = {"hostname": socket.gethostname(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


def run_dir(out: Path, env_id: str, label: str, seed: int) -> Path:
    return Path(out) / env_id / label / f"seed_{seed}"


@dataclass
class RunRecord:
    """Writer for one run's directory."""
    path: Path
    meta: dict[str, Any]
    evaluations: list[dict[str, float]]

    @classmethod
    def create(cls, path: Path, meta: dict[str, Any]) -> "RunRecord":
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"cannot write run records to {path}: {exc.strerror or exc}") from None
        record = cls(path, {"format": FORMAT_VERSION, **meta, "status": "running", "error": None,
                            "started_at": now(), "ended_at": None, "final_score": None,
                            "best_score": None, "steps_done": 0}, [])
        record.write()
        return record

    @classmethod
    def load(cls, path: Path) -> "RunRecord":
        """A record to resume or skip; a corrupt one is a UsageError naming the file."""
        try:
            meta = json.loads((path / "run.json").read_text())
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{path / 'run.json'}: corrupt run record ({exc}); remove the directory to rerun") from None
        try:
            evaluations = read_evaluations(path / "evaluations.csv")
        except (OSError, UnicodeDecodeError, ValueError, TypeError, csv.Error) as exc:
            raise UsageError(f"{path / 'evaluations.csv'}: corrupt evaluations ({exc}); "
                             f"remove the directory to rerun") from None
        return cls(path, meta, evaluations)

    def write(self) -> None:
        atomic_write(self.path / "run.json", (json.dumps(self.meta, indent=2, default=str) + "\n").encode())
        text = io.StringIO()
        writer = csv.DictWriter(text, EVAL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.evaluations)
        atomic_write(self.path / "evaluations.csv", text.getvalue().encode())

    def add_evaluation(self, row: dict[str, float]) -> None:
        self.evaluations.append(row)
        self.meta["steps_done"] = row["step"]
        self.meta["final_score"] = row["return_mean"]
        self.meta["best_score"] = max(r["return_mean"] for r in self.evaluations)
        self.write()

    def finish(self, status: str, error: str | None = None) -> None:
        self.meta.update(status=status, error=error, ended_at=now())
        self.write()


def read_evaluations(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(float(v)) if k in ("step", "episodes") else float(v)) for k, v in row.items()} for row in rows]
