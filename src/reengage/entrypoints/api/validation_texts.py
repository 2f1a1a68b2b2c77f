"""The messages of request validation (pydantic's) in the caller's language.

Each common pydantic error type maps to its message template (the English text pydantic
writes, `tests/unit/test_i18n.py` checks they still match), a msgid of the catalogue filled
with the error's context. Other types keep pydantic's English message."""

from __future__ import annotations

from typing import Any

from reengage.i18n import N_, translate

TEMPLATES = {
    "missing": N_("Field required"),
    "extra_forbidden": N_("Extra inputs are not permitted"),
    "json_invalid": N_("Invalid JSON: {error}"),
    "model_attributes_type": N_(
        "Input should be a valid dictionary or object to extract fields from"
    ),
    "model_type": N_("Input should be a valid dictionary or instance of {class_name}"),
    "dict_type": N_("Input should be a valid dictionary"),
    "list_type": N_("Input should be a valid list"),
    "string_type": N_("Input should be a valid string"),
    "string_too_short": N_("String should have at least {min_length} character{expected_plural}"),
    "string_too_long": N_("String should have at most {max_length} character{expected_plural}"),
    "string_pattern_mismatch": N_("String should match pattern '{pattern}'"),
    "too_short": N_(
        "{field_type} should have at least {min_length} item{expected_plural} after "
        "validation, not {actual_length}"
    ),
    "too_long": N_(
        "{field_type} should have at most {max_length} item{expected_plural} after "
        "validation, not {actual_length}"
    ),
    "int_type": N_("Input should be a valid integer"),
    "int_parsing": N_("Input should be a valid integer, unable to parse string as an integer"),
    "int_from_float": N_("Input should be a valid integer, got a number with a fractional part"),
    "float_type": N_("Input should be a valid number"),
    "float_parsing": N_("Input should be a valid number, unable to parse string as a number"),
    "bool_type": N_("Input should be a valid boolean"),
    "bool_parsing": N_("Input should be a valid boolean, unable to interpret input"),
    "greater_than": N_("Input should be greater than {gt}"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "less_than": N_("Input should be less than {lt}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "literal_error": N_("Input should be {expected}"),
    "enum": N_("Input should be {expected}"),
    "datetime_type": N_("Input should be a valid datetime"),
    "datetime_parsing": N_("Input should be a valid datetime, {error}"),
    "timezone_aware": N_("Input should have timezone info"),
}


def _plural(ctx: dict[str, Any]) -> str:
    count = next((ctx[k] for k in ("min_length", "max_length") if k in ctx), 2)
    return "" if count == 1 else "s"


def validation_message(err: dict[str, Any], language: str) -> str:
    """One pydantic error's message in `language`."""
    english = str(err.get("msg", "invalid"))
    template = TEMPLATES.get(str(err.get("type")))
    if language == "en" or template is None:
        return english
    ctx = {k: v for k, v in (err.get("ctx") or {}).items() if isinstance(k, str)}
    try:
        return translate(template, language, **{"expected_plural": _plural(ctx), **ctx})
    except (KeyError, IndexError, ValueError):
        return english
