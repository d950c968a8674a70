"""The `simscale` command's help as a user reads it: defaults on every flag, examples, no reST markup."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from simscale.cli import build_parser

DOCUMENTED_DEFAULTS = ("simulate", "figures", "loadgen", "calibrate", "validate", "plan")
"""Commands whose every flag must state its default (the others do too, but are not held to it)."""

_REST = re.compile(r"``|:(?:func|class|mod|meth|attr|data|exc|obj):")


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every sub-command of ``parser``, nested ones too (``hub serve``), by its full name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                full = f"{prefix}{name}"
                yield full, child
                yield from _commands(child, f"{full} ")


COMMANDS = dict(_commands(build_parser()))


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def test_the_walk_finds_every_command() -> None:
    assert set(DOCUMENTED_DEFAULTS) | {"presets", "demo", "hub", "hub serve", "hub cluster"} <= set(COMMANDS)


@pytest.mark.parametrize("name", DOCUMENTED_DEFAULTS)
def test_every_flag_has_help_stating_its_default(name: str) -> None:
    options = _options(COMMANDS[name])
    assert options, f"{name} has no flags?"
    for action in options:
        assert action.help and "(default:" in action.help, f"{name} {action.option_strings[0]}: {action.help!r}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_stated_default_is_the_real_one(name: str) -> None:
    parser = COMMANDS[name]
    for action in _options(parser):
        default = action.default
        text = parser._get_formatter()._expand_help(action) if action.help else ""  # as printed: %(default)s filled
        if "(default:" not in text or isinstance(default, bool):
            continue
        if not isinstance(default, str | int | float) or default == "":
            continue
        stated = text.split("(default: ", 1)[1].split(")")[0].split()[0].rstrip(",;")
        try:
            same = float(stated) == float(default)  # "8 s" states 8.0; "1" states the string "1.0"
        except ValueError:
            same = stated == str(default)
        assert same, f"{name} {action.option_strings[0]}: help says {stated!r}, the default is {default!r}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_description_and_an_example(name: str) -> None:
    parser = COMMANDS[name]
    assert parser.description and len(parser.description) > 40, name
    assert parser.epilog and "Example" in parser.epilog, name
    assert f"simscale {name}" in parser.epilog, f"{name}: the example does not run the command itself"


@pytest.mark.parametrize("name", ["", *sorted(COMMANDS)])
def test_rendered_help_has_no_rest_markup(name: str) -> None:
    parser = COMMANDS[name] if name else build_parser()
    text = parser.format_help()
    assert not _REST.findall(text), f"simscale {name} --help shows reST markup:\n{text}"


def test_top_level_help_lists_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "Examples:" in text and "simscale simulate backplane" in text
    assert not _REST.findall(text)


def test_simulate_quotes_the_example_presets_real_values() -> None:
    from simscale.scenarios import preset

    shown = preset("backplane")
    helps = {a.option_strings[0]: a.help or "" for a in _options(COMMANDS["simulate"])}
    assert f"(default: the preset's, e.g. {shown.clients:,} for backplane)" in helps["--clients"]
    assert f"(default: the preset's, e.g. {shown.servers} for backplane)" in helps["--servers"]
