"""The extra commands' plumbing: a command is a typed function; jsonargparse turns its signature into flags
(`--name value`; a tuple as `[a,b]`, a bool as `true`/`false`, a dataclass field as `--spec.field`), its docstring
into `--help`, and reads the same values from a YAML (`--config FILE`, unless the command has its own `config`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable


def run_function(function: Callable[..., int], argv: list[str], command: str) -> int:
    """Parse `argv` into `function`'s keyword arguments and call it."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    doc = inspect.getdoc(function) or ""
    parser = ArgumentParser(prog=f"python -m lightning_aapt {command}", description=doc.split("\n\n")[0])
    parameters = inspect.signature(function).parameters
    if "config" not in parameters:
        parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these arguments")
    parser.add_function_arguments(function, as_positional=False)
    values = parser.instantiate_classes(parser.parse_args(argv))
    return function(**{name: values[name] for name in parameters})
