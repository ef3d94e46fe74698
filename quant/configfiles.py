"""Reading a folder of YAML configs all or nothing (strategies, feature sets).

Every file is read and validated before anything is used: one problem anywhere means none is
loaded, and the one error lists every problem of every file, each line naming the file (and
the field), two files that claim the same name included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from quant.errors import ValidationError

SUFFIXES = (".yaml", ".yml")
T = TypeVar("T")


@dataclass(frozen=True)
class ConfigFile(Generic[T]):
    """One validated config and the file it came from."""

    path: Path
    value: T


def config_files_validate(
    path: Path, *, load: Callable[[Path], T], name_of: Callable[[T], str], kind: str
) -> list[ConfigFile[T]]:
    """Every config under ``path`` (a folder of *.yaml / *.yml, or one file), each read by
    ``load`` (which raises ``ValidationError`` naming the field); ``kind`` names them in
    messages ("strategy config", "feature set")."""
    files = config_file_paths(path, kind=kind)
    loaded: list[ConfigFile[T]] = []
    problems: dict[str, list[str]] = {}
    for file in files:
        try:
            loaded.append(ConfigFile(path=file, value=load(file)))
        except ValidationError as error:
            listed = error.details.get("problems")
            problems[str(file)] = [str(p) for p in listed] if listed else [error.message]
    seen: dict[str, Path] = {}
    for item in loaded:
        name = name_of(item.value)
        other = seen.setdefault(name, item.path)
        if other != item.path:
            problems.setdefault(str(item.path), []).append(
                f"name: {name!r} is already used by {other}"
            )
    if problems:
        lines = [
            problem if problem.startswith(file) else f"{file}: {problem}"  # YAML errors name it
            for file, listed in problems.items()
            for problem in listed
        ]
        raise ValidationError(
            f"{len(problems)} of {len(files)} {kind} file(s) invalid, nothing loaded:\n"
            + "\n".join(f"  {line}" for line in lines),
            details={"files": problems},
        )
    return loaded


def config_file_paths(path: Path, *, kind: str) -> Sequence[Path]:
    """``path`` itself when it is a file, else its *.yaml and *.yml files by name."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValidationError(f"{path}: no such file or directory")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        raise ValidationError(f"{path}: no {kind} files (*.yaml, *.yml) in this directory")
    return files
