"""The drawing in `instantly_guard/errors.py` is true: every exception class in the package is a
`GuardError` and is drawn under its real parent."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import instantly_guard
from instantly_guard import errors
from instantly_guard.errors import GuardError

# Lines of the drawing: tree glyphs, then a (possibly module-qualified) class name.
_LINE = re.compile(r"^    (?P<prefix>(?:[│ ]   )*)(?:[├└]── )?(?P<name>[A-Za-z_.]+Error)\b")
_SOURCE = Path(errors.__file__).read_text(encoding="utf-8")


def _classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in the package, by its drawn name: `Name` for errors.py,
    `module.path.Name` (relative to instantly_guard) for the others. Private ones are skipped."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(instantly_guard.__path__, "instantly_guard."):
        if info.name.endswith(".__main__"):  # runs the command when imported
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                relative = module.__name__.removeprefix("instantly_guard.")
                found[name if relative == "errors" else f"{relative}.{name}"] = value
    return found


def _drawing() -> dict[str, str | None]:
    """Drawn name -> drawn parent (None for the root)."""
    docstring = errors.__doc__ or ""
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in docstring.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        depth = len(match["prefix"]) // 4 + (0 if line.strip().startswith("GuardError") else 1)
        del stack[depth:]
        parents[match["name"]] = stack[-1] if stack else None
        stack.append(match["name"])
    return parents


def _drawn_name(cls: type[BaseException], classes: dict[str, type[BaseException]]) -> str:
    return next(name for name, value in classes.items() if value is cls)


def test_the_drawing_is_found() -> None:
    drawing = _drawing()
    assert drawing["GuardError"] is None
    assert drawing["ConfigError"] == "GuardError"
    assert drawing["AlreadyDeletedError"] == "NotFoundError"


def test_every_exception_class_is_a_guard_error() -> None:
    strays = [name for name, cls in _classes().items() if not issubclass(cls, GuardError)]
    assert strays == []


def test_every_exception_class_is_drawn_under_its_parent() -> None:
    classes = _classes()
    drawing = _drawing()
    missing = sorted(set(classes) - set(drawing))
    assert missing == [], f"not in the drawing of errors.py: {missing}"
    wrong = {}
    for name, cls in classes.items():
        if cls is GuardError:
            continue
        parent = next(base for base in cls.__mro__[1:] if issubclass(base, GuardError))
        if drawing[name] != _drawn_name(parent, classes):
            wrong[name] = (drawing[name], _drawn_name(parent, classes))
    assert wrong == {}, "drawn parent != real parent"
    assert sorted(set(drawing) - set(classes)) == [], "drawn classes that do not exist"
