"""One option schema: EraseOptions' field metadata drives the CLI, the HTTP API and its checks."""

import dataclasses
import inspect
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.models import OptionInfo as TyperOptionInfo

from eradiff.cli.erase import erase_command
from eradiff.options import EraseOptions, option_defaults, option_infos
from eradiff.serve.inputs import OPTION_TYPES, ApiError, parse_options

INFOS = option_infos()
RANGED = {name: info for name, info in INFOS.items() if info.low is not None and info.choices is None}


def test_every_field_declares_its_option_once():
    assert list(INFOS) == [f.name for f in dataclasses.fields(EraseOptions)]
    assert all(info.help for info in INFOS.values())
    assert option_defaults() == dataclasses.asdict(EraseOptions())


def test_the_cli_takes_flag_default_and_help_from_the_schema():
    params = inspect.signature(erase_command).parameters
    flagged = {name: info for name, info in INFOS.items() if info.flag is not None}
    assert flagged, "no option has a CLI flag"
    for name, info in flagged.items():
        declared = params[name].default
        assert isinstance(declared, TyperOptionInfo), name
        assert declared.default == option_defaults()[name], name
        assert declared.param_decls == (info.flag,), name
        assert info.help[1:] in declared.help, name
        if info.choices is not None:
            assert all(c in declared.help for c in info.choices), name


def test_the_api_lists_exactly_the_api_fields_and_format():
    assert set(OPTION_TYPES) == {n for n, i in INFOS.items() if i.api} | {"format"}
    for name, (_, description) in OPTION_TYPES.items():
        if name != "format":
            assert description.startswith(INFOS[name].help), name


def _valid(info, value) -> bool:
    low_ok = value > info.low if info.low_open else value >= info.low
    return low_ok and (info.high is None or value <= info.high)


@given(name=st.sampled_from(sorted(RANGED)), value=st.floats(-1e3, 1e3, allow_nan=False))
def test_a_numeric_option_is_accepted_exactly_within_its_declared_range(name, value):
    info = RANGED[name]
    if dataclasses.fields(EraseOptions)[list(INFOS).index(name)].type in ("int", "int | None"):
        value = math.floor(value)
    extra = {"steps": 1000} if name == "strength" else {}  # strength × steps must run a step
    assume(not (name == "strength" and 0 < value < 1e-3))  # that cross-field rule is checked on its own
    if _valid(info, value):
        assert getattr(EraseOptions(**{name: value}, **extra), name) == value
    else:
        with pytest.raises(ValueError, match=name):
            EraseOptions(**{name: value}, **extra)


@pytest.mark.parametrize("name", [n for n, i in INFOS.items() if i.api and i.api_high is not None])
def test_the_api_bound_is_tighter_than_the_library(name):
    info = INFOS[name]
    over = info.api_high + 1
    assert getattr(EraseOptions(**{name: over}), name) == over  # the library takes it
    with pytest.raises(ApiError, match=f"'{name}' = {over}"):
        parse_options({name: over}.__repr__().replace("'", '"'), defaults=EraseOptions(), seed=0)
    at = parse_options(f'{{"{name}": {info.api_high}}}', defaults=EraseOptions(), seed=0)
    assert getattr(at.erase, name) == info.api_high


@pytest.mark.parametrize("name", [n for n, i in INFOS.items() if i.choices])
def test_choice_options_refuse_other_strings_everywhere(name):
    with pytest.raises(ValueError, match=f"{name}='nope'"):
        EraseOptions(**{name: "nope"})
    with pytest.raises(ApiError, match=f"{name}='nope'"):
        parse_options(f'{{"{name}": "nope"}}', defaults=EraseOptions(), seed=0)


def test_the_api_accepts_every_default_as_json():
    """Each API option's own default, sent as JSON, parses to the same options (bool, null, float, str)."""
    import json

    values = {n: option_defaults()[n] for n, i in INFOS.items() if i.api}
    parsed = parse_options(json.dumps(values), defaults=EraseOptions(), seed=0)
    assert parsed.erase == EraseOptions()
    flipped = parse_options(json.dumps({"sra": False, "strength": 1, "steps": None}), defaults=EraseOptions(), seed=0)
    assert flipped.erase.sra is False and isinstance(flipped.erase.strength, float) and flipped.erase.steps is None
