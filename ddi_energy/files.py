"""Files in and out, at the bottom of the package so every stage can save without importing the
profiler: atomic writes (a file is never half-written), output directories checked before any
work, and YAML config files read safely and refused with one line naming the file and the key.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from ddi_energy.errors import DDIError

_UMASK = os.umask(0)
os.umask(_UMASK)


def check_writable(out_dir: Path) -> None:
    """Fail before any work if the output directory cannot be created or written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DDIError(f"{out_dir}: cannot create output directory ({exc.strerror})") from None
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK | os.X_OK):
        raise DDIError(f"{out_dir}: output directory is not writable")


def prepare_dirs(*dirs: Path) -> None:
    """`check_writable` on each directory; if one fails, the ones made here are removed again,
    so a bad second output leaves no empty first one behind."""
    made: list[Path] = []
    try:
        for directory in dirs:
            missing = [d for d in (directory, *directory.parents) if not d.exists()]
            check_writable(directory)
            made += missing
    except DDIError:
        for directory in made:  # deepest first
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise


@contextmanager
def cleanup_on_failure(*dirs: Path | None, keep: Callable[[], bool] = lambda: False
                       ) -> Iterator[None]:  # fmt: skip
    """Remove what the block creates in the output directories `dirs` if it fails, however it
    fails (a user error, an unexpected exception, Ctrl-C): directories it made go entirely,
    new entries of directories that existed go, entries that were there stay.

    `keep()` is asked after a failure: True keeps everything (e.g. a run that has written a
    checkpoint, which `--resume` continues). Files themselves are never half-written
    (`atomic_write_all`), so what is left after a failure is only ever complete, older files.
    """
    before = {d: _entries(d) for d in dirs if d is not None}
    made = {d: _first_missing(d) for d in before}
    try:
        yield
    except BaseException:
        if not keep():
            for directory, entries in before.items():
                if made[directory] is not None:
                    shutil.rmtree(made[directory], ignore_errors=True)
                else:
                    for entry in _entries(directory) - entries:
                        if entry.is_dir() and not entry.is_symlink():
                            shutil.rmtree(entry, ignore_errors=True)
                        else:
                            entry.unlink(missing_ok=True)
        raise


def _entries(directory: Path) -> set[Path]:
    return set(directory.iterdir()) if directory.is_dir() else set()


def _first_missing(directory: Path) -> Path | None:
    """The outermost of `directory` and its parents that does not exist yet (None: it exists)."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    return missing[-1] if missing else None


def atomic_write(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and rename: never a half-written file."""
    atomic_write_all({path: text})


def atomic_write_all(files: dict[Path, str]) -> None:
    """Write every file to a temp file first and rename them only once all are written, so a
    failure leaves none of them changed (not a new CSV beside an old JSON)."""
    temps: dict[Path, str] = {}
    path = next(iter(files))
    try:
        for path, text in files.items():
            fd, temps[path] = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                               suffix=".tmp")  # fmt: skip
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(temps[path], 0o666 & ~_UMASK)  # mkstemp makes 0600: normal permissions
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except OSError as exc:
        raise DDIError(f"{path}: cannot write ({exc.strerror})") from None
    finally:
        for tmp in temps.values():
            Path(tmp).unlink(missing_ok=True)


def load_torch_file(path: str | Path, what: str) -> Any:
    """`torch.load(path)` weights-only onto the CPU; a missing or unreadable file is a DDIError
    naming it and `what` it should be. (torch is imported here, not with this module.)"""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DDIError(f"{path}: no such {what}") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DDIError(f"{path}: not a {what} ({type(exc).__name__})") from None


def load_mapping(path: str | Path | None, what: str, allowed: Collection[str]) -> dict[str, Any]:
    """The mapping in YAML file `path` ({} for None), every key one of `allowed`."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise DDIError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except yaml.YAMLError:
        raise DDIError(f"{path}: not valid YAML") from None
    if not isinstance(data, dict):
        raise DDIError(f"{path}: a {what} is a mapping of {', '.join(sorted(allowed))}")
    check_keys(data, allowed, str(path))
    return data


def check_keys(data: dict[str, Any], allowed: Collection[str], where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise DDIError(f"{where}: unknown key {unknown[0]!r} (allowed: "
                       f"{', '.join(sorted(allowed))})")  # fmt: skip
