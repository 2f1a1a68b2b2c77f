"""One message catalogue for every text reengage shows a person: API errors, the manager bot
and the web console, in pt-BR (the default) and English.

The catalogue is gettext's: English text is the `msgid`, the pt-BR text its `msgstr`, in
`locale/pt_BR/LC_MESSAGES/messages.po` (English needs no catalogue). Two kinds of entries:

- messages marked in the code with `N_("...")` (API and service errors), found by
  `pybabel extract` and translated with `translate(msgid, language, **values)`;
- texts looked up by a key (the console's templates and the manager bot's screens call
  `t("overview")`): their entry carries the key as its context (`msgctxt "console:overview"`)
  and is read with `keyed("console", "overview", language)`.

Placeholders are `str.format` fields (`{name}`), filled after translation.

The `.po` file itself is read at run time (Babel's `read_po`, once per process, cached), not a
compiled `.mo`: the wheel carries the one file translators edit, there is no build step at
install or run time, and no compiled copy that can fall out of date with its source. Parsing
the few hundred entries takes milliseconds, once. `tests/unit/test_i18n.py` checks that every
entry is translated with the same placeholders, and that every `N_()` in the code is in it.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

LANGUAGES = ("pt-BR", "en")
DEFAULT = "pt-BR"
CATALOGUE = "locale/pt_BR/LC_MESSAGES/messages.po"


def N_(msgid: str) -> str:
    """Marks `msgid` for the catalogue; translated later, where the language is known."""
    return msgid


@dataclass(frozen=True, slots=True)
class _Texts:
    plain: dict[str, str]  # English msgid -> pt-BR
    by_key: dict[str, tuple[str, str]]  # context "scope:key" -> (English, pt-BR)


def read_catalogue() -> Catalog:
    """The pt-BR catalogue as Babel reads it."""
    with resources.files(__package__).joinpath(CATALOGUE).open("rb") as file:
        return read_po(file, locale="pt_BR")


@functools.cache
def _texts() -> _Texts:
    plain: dict[str, str] = {}
    by_key: dict[str, tuple[str, str]] = {}
    for message in read_catalogue():
        if not message.id or not isinstance(message.id, str):
            continue  # the header; plural forms are not used
        pt = str(message.string or "") or message.id
        if message.context:
            by_key[message.context] = (message.id, pt)
        else:
            plain[message.id] = pt
    return _Texts(plain, by_key)


def language(value: str | None) -> str:
    """One of `LANGUAGES` for a stored or requested language (`en-US` is English); pt-BR
    otherwise."""
    return "en" if value and value.strip().lower()[:2] == "en" else DEFAULT


def _fill(text: str, values: dict[str, Any]) -> str:
    return text.format(**values) if values else text


def translate(msgid: str, lang: str, /, **values: Any) -> str:
    """`msgid` in `lang`, with `values` filled in; a message not in the catalogue stays in
    English."""
    if lang != "en":
        msgid = _texts().plain.get(msgid, msgid)
    return _fill(msgid, values)


def keyed(scope: str, key: str, lang: str, /, **values: Any) -> str:
    """The text of `key` (a console or manager bot text) in `lang`; KeyError if unknown."""
    en, pt = _texts().by_key[f"{scope}:{key}"]
    return _fill(en if lang == "en" else pt, values)


def keys(scope: str) -> set[str]:
    """The keys of a scope's texts."""
    prefix = f"{scope}:"
    return {c.removeprefix(prefix) for c in _texts().by_key if c.startswith(prefix)}


def placeholders(text: str) -> set[str]:
    """The `{fields}` of a text (the test compares them between msgid and msgstr)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def negotiate(accept_language: str | None, supported: Iterable[str] = LANGUAGES) -> str:
    """The first of the caller's `Accept-Language` choices we speak (by quality), else
    pt-BR."""
    if not accept_language:
        return DEFAULT
    choices = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        choices.append((-quality, position, tag.strip().lower()))
    known = {s.lower()[:2]: s for s in supported}
    for quality, _, tag in sorted(choices):
        if quality < 0 and tag[:2] in known:
            return known[tag[:2]]
    return DEFAULT
