"""The extra commands' plumbing: a command is a typed function; jsonargparse turns its signature into flags
(`--name value`; a tuple as `[a,b]`, a bool as `true`/`false`, a dataclass field as `--spec.field`), its docstring
into `--help`, and reads the same values from a YAML (`--config FILE`, unless the command has its own `config`).
A value the parser refuses is one `ConfigError` (the key and the reason), which `cli.run` prints as one `error:` line.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable

from lightning_aapt.errors import ConfigError


def run_function(function: Callable[..., int], argv: list[str], command: str) -> int:
    """Parse `argv` into `function`'s keyword arguments and call it."""
    from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser

    from lightning_aapt.cli.lightning import parse_error

    doc = inspect.getdoc(function) or ""
    parser = ArgumentParser(prog=f"python -m lightning_aapt {command}", description=doc.split("\n\n")[0],
                            exit_on_error=False, allow_abbrev=False)
    parameters = inspect.signature(function).parameters
    if "config" not in parameters:
        parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these arguments")
    groups = settings_groups(function)
    parser.add_function_arguments(function, as_positional=False, skip=set(groups))
    for name, cls in groups.items():  # a group takes a file of its fields too: `--spec world.yaml`
        parser.add_class_arguments(cls, name, help=f"{name}: a YAML file of its fields, or --{name}.FIELD")
    try:
        values = parser.instantiate(parser.parse_args(argv))
    except ArgumentError as err:  # "frames: Expected ..." said as the flag a user types
        refused = str(parse_error(str(err)))
        key = refused.split(":", 1)[0]
        raise ConfigError(f"--{refused}" if key.replace(".", "").replace("_", "").isalnum() else refused) from None
    return function(**{name: values[name] for name in parameters})


class OneLineParser(argparse.ArgumentParser):
    """argparse (`pipeline`, `sweep`) whose refusal is a `ConfigError`: one `error:` line, not a usage text."""

    def error(self, message: str):
        raise ConfigError(f"{self.prog}: {message}")


def settings_groups(function: Callable[..., int]) -> dict[str, type]:
    """The parameters that are settings dataclasses left out by default (`spec: ToyWorldSpec | None = None`: the
    function uses the class's defaults), by name: each becomes a group of flags that also reads a file."""
    import dataclasses
    import types
    import typing

    try:
        hints = typing.get_type_hints(function)
    except NameError:  # an annotation only a type checker resolves: no groups
        return {}
    groups = {}
    for name, parameter in inspect.signature(function).parameters.items():
        kinds = typing.get_args(hints.get(name)) if isinstance(hints.get(name), types.UnionType) else ()
        classes = [k for k in kinds if k is not type(None)]
        if parameter.default is None and len(classes) == 1 and dataclasses.is_dataclass(classes[0]):
            groups[name] = classes[0]
    return groups
