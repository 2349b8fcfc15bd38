"""Atomic file writes and figure saving: every file the core writes goes to a temporary sibling
first and is moved into place with :func:`os.replace` (a crash leaves no half-written file)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

# fmt: off
__all__ = [
    "DATA_ENV", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "data_root",
    "save_figure",
]
# fmt: on

#: The environment variable naming the folder of data sets that users download themselves
#: (the paper-scale ``--full`` runs read from it; nothing is downloaded for them).
DATA_ENV = "PAPERSHELF_DATA"


def data_root() -> Path | None:
    """The folder named by ``$PAPERSHELF_DATA``, or ``None`` when the variable is unset or empty."""
    value = os.environ.get(DATA_ENV)
    return Path(value) if value else None


def _umask() -> int:
    os.umask(mask := os.umask(0))
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (all or nothing) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN and inf are refused)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def save_figure(fig: Any, path: str | Path, *, dpi: int = 150, close: bool = True) -> Path:
    """Save a matplotlib figure atomically to ``path`` (``.png`` added when it has no suffix);
    ``close`` closes the figure afterwards, to free its memory."""
    import io as _io

    path = Path(path) if Path(path).suffix else Path(path).with_suffix(".png")
    buf = _io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip("."), dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path
