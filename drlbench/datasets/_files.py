"""Small file helpers: sha256, atomic replace, HDF5/JSON values as plain python."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

# Metadata arrays with more elements than this are summarised, not copied (e.g. policy weights).
MAX_METADATA_ELEMENTS = 1024


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in `path`'s directory; on success fsync it and os.replace it onto
    `path`, on failure delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def plain(value):
    """numpy / bytes / set values as plain python (str, int, float, bool, list, dict, None);
    arrays over MAX_METADATA_ELEMENTS become a short description string."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, np.ndarray):
        if value.size > MAX_METADATA_ELEMENTS:
            return f"<{value.dtype} array of shape {value.shape}>"
        return plain(value.item()) if value.ndim == 0 else plain(value.tolist())
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
