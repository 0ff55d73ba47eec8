"""The extra commands' plumbing: a command is a typed function; jsonargparse turns its signature into flags
(`--name value`; a tuple as `[a,b]`, a bool as `true`/`false`, a dataclass field as `--spec.field`), its docstring
into `--help`, and reads the same values from a YAML (`--config FILE`, unless the command has its own `config`).
A value the parser refuses is one `ConfigError` (the key and the reason), which `cli.run` prints as one `error:` line.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from lightning_aapt.errors import ConfigError


def run_function(function: Callable[..., int], argv: list[str], command: str) -> int:
    """Parse `argv` into `function`'s keyword arguments and call it. A function with an `overrides` parameter takes
    the arguments after `--` there, unparsed (LightningCLI arguments it forwards: `pipeline`, `sweep`)."""
    from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser

    from lightning_aapt.cli.lightning import parse_error

    doc = inspect.getdoc(function) or ""
    parser = ArgumentParser(prog=f"python -m lightning_aapt {command}", description=doc.split("\n\n")[0],
                            exit_on_error=False, allow_abbrev=False)
    parameters = inspect.signature(function).parameters
    forwarded = "overrides" in parameters
    if forwarded:
        split = argv.index("--") if "--" in argv else len(argv)
        argv, overrides = argv[:split], argv[split + 1:]
        if stray := [a for a in argv if a.startswith(("--trainer.", "--model.", "--data.", "--seed_everything"))]:
            raise ConfigError(f"{stray[0]}: {command} forwards LightningCLI arguments after `--`: python -m "
                              f"lightning_aapt {command} ... -- {' '.join(stray)}")
    if "config" not in parameters:
        parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these arguments")
    groups = settings_groups(function)
    parser.add_function_arguments(function, as_positional=False, skip={*groups, "overrides"})
    for name, cls in groups.items():  # a group takes a file of its fields too: `--spec world.yaml`
        parser.add_class_arguments(cls, name, help=f"{name}: a YAML file of its fields, or --{name}.FIELD")
    try:
        values = parser.instantiate(parser.parse_args(repeated_as_appends(argv, list_parameters(function))))
    except ArgumentError as err:  # "frames: Expected ..." said as the flag a user types
        refused = str(parse_error(str(err)))
        key = refused.split(":", 1)[0]
        raise ConfigError(f"--{refused}" if key.replace(".", "").replace("_", "").isalnum() else refused) from None
    given = {name: values[name] for name in parameters if name != "overrides"}
    return function(**given, **({"overrides": overrides} if forwarded else {}))


def list_parameters(function: Callable[..., int]) -> set[str]:
    """The parameters whose type is a list (`grid: list[str] | None`): a flag a user repeats."""
    import typing

    try:
        hints = typing.get_type_hints(function)
    except NameError:  # an annotation only a type checker resolves: no repeated flags
        return set()
    return {name for name, hint in hints.items()
            if typing.get_origin(hint) is list or list in map(typing.get_origin, typing.get_args(hint))}


def repeated_as_appends(argv: list[str], names: set[str]) -> list[str]:
    """`--grid A --grid B` as jsonargparse's appends (`--grid+ A --grid+ B`): each repetition adds an item."""
    flags = {f"--{name}" for name in names}
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        out.append(f"{flag}+{eq}{value}" if flag in flags else arg)
    return out


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
