"""The message catalogue: every entry translated with the same placeholders, every message
the code marks present in it, the texts looked up by key all in it, and the scripts that
feed it."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.pofile import read_po
from pydantic_core import PydanticKnownError

from reengage import i18n
from reengage.domain.campaign_draft import DraftError
from reengage.domain.schedule import ScheduleError
from reengage.entrypoints.api.validation_texts import TEMPLATES, validation_message
from reengage.entrypoints.console import texts as console_texts
from reengage.entrypoints.manager_bot import texts as bot_texts
from reengage.services.errors import InvalidInput, NotFound

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = [m for m in i18n.read_catalogue() if m.id]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda m: m.context or str(m.id)[:40])
def test_every_entry_has_a_pt_br_text_with_the_same_placeholders(entry: object) -> None:
    msgid, msgstr = str(entry.id), str(entry.string)  # type: ignore[attr-defined]
    assert msgstr.strip(), f"{msgid!r} has no pt-BR text"
    assert i18n.placeholders(msgstr) == i18n.placeholders(msgid)


def test_the_catalogue_holds_exactly_the_messages_the_code_marks() -> None:
    marked = set(_script("i18n_extract").extracted())
    plain = {str(m.id) for m in ENTRIES if not m.context}
    assert marked - plain == set(), "run scripts/i18n_extract.py and translate"
    assert plain - marked == set(), "run scripts/i18n_extract.py --prune"


def test_no_text_is_left_in_the_old_tuples() -> None:
    # New (pt-BR, English) entries go into the catalogue: scripts/i18n_import_tuples.py
    assert console_texts._TEXTS == {}
    assert bot_texts._TEXTS == {}


@pytest.mark.parametrize(
    ("error", "pt", "en"),
    [
        (ScheduleError("time", "25:00"), "Horário inválido: 25:00", "Invalid time: 25:00"),
        (DraftError("no_step", 6), "O passo 6 não existe", "Step 6 does not exist"),
    ],
)
def test_domain_errors_read_the_catalogue(error: Exception, pt: str, en: str) -> None:
    assert (error.message("pt-BR"), error.message("en")) == (pt, en)  # type: ignore[attr-defined]
    assert str(error) == en


def test_keys_are_unique_per_scope() -> None:
    contexts = [m.context for m in ENTRIES if m.context]
    assert len(contexts) == len(set(contexts))
    scopes = {"console", "manager_bot", "schedule", "campaign_draft"}
    assert all(c.split(":")[0] in scopes for c in contexts)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("pt-BR", "Bem-vindo! Você agora administra Loja."),
        ("en", "Welcome! You now manage Loja."),
        ("fr", "Bem-vindo! Você agora administra Loja."),
    ],
)
def test_manager_bot_texts_in_both_languages(language: str, expected: str) -> None:
    assert bot_texts.t(language, "welcome", org="Loja") == expected


def test_console_texts_in_both_languages() -> None:
    assert console_texts.text("pt-BR", "overview") == "Visão geral"
    assert console_texts.text("en", "overview") == "Overview"
    assert console_texts.text("en", "bot_title", name="Loja") == "Bot Loja"
    assert {"overview", "err_login"} <= console_texts.keys()
    # The same key in two scopes keeps its own text.
    assert console_texts.text("en", "no_bots") != bot_texts.t("en", "no_bots")


def test_translate_fills_values_and_keeps_unknown_messages_in_english() -> None:
    assert i18n.translate("bot {bot_id} has no campaign", "pt-BR", bot_id=7) == (
        "o bot 7 não tem campanha"
    )
    assert i18n.translate("bot {bot_id} has no campaign", "en", bot_id=7) == (
        "bot 7 has no campaign"
    )
    assert i18n.translate("not in the catalogue", "pt-BR") == "not in the catalogue"


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "pt-BR"),
        ("", "pt-BR"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR, en;q=0.5", "en"),
        ("pt-BR,en;q=0.8", "pt-BR"),
        ("en;q=0.2, pt;q=0.9", "pt-BR"),
        ("en;q=0", "pt-BR"),
        ("de, fr", "pt-BR"),
        ("*", "pt-BR"),
        ("en;q=abc", "pt-BR"),
    ],
)
def test_accept_language_negotiation(header: str | None, language: str) -> None:
    assert i18n.negotiate(header) == language


@pytest.mark.parametrize("error_type", sorted(TEMPLATES))
def test_validation_templates_are_pydantics(error_type: str) -> None:
    """A pydantic upgrade that rewords a message shows here, not as an untranslated one."""
    words = {"expected", "field_type", "error", "class_name", "pattern"}
    names = i18n.placeholders(TEMPLATES[error_type]) - {"expected_plural"}
    ctx = {k: "x" if k in words else 1 for k in names} or None
    assert PydanticKnownError(error_type, ctx).message_template == TEMPLATES[error_type]


def test_validation_messages_are_translated_with_their_context() -> None:
    err = {"type": "string_too_long", "msg": "String should have at most 5 characters"}
    assert validation_message({**err, "ctx": {"max_length": 5}}, "pt-BR") == (
        "O texto deve ter no máximo 5 caracteres"
    )
    assert validation_message({**err, "ctx": {"max_length": 5}}, "en") == err["msg"]
    odd = {"type": "uuid_parsing", "msg": "Input should be a valid UUID"}
    assert validation_message(odd, "pt-BR") == odd["msg"]  # not in the table: English


MODULE = '''
"""Some texts."""

_TEXTS: dict[str, tuple[str, str]] = {
    "kept": ("Mantido", "Kept"),
    "greeting": (
        "Olá, {name}!",
        "Hello, {name}!",
    ),
}


def other() -> None:
    pass
'''


def _po(tmp_path: Path) -> Path:
    catalogue = tmp_path / "messages.po"
    shutil.copy(ROOT / "src/reengage/i18n" / i18n.CATALOGUE, catalogue)
    return catalogue


def test_the_import_script_moves_tuples_into_the_catalogue(tmp_path: Path) -> None:
    catalogue, module = _po(tmp_path), tmp_path / "pages" / "texts.py"
    module.parent.mkdir()
    module.write_text(textwrap.dedent(MODULE))
    script = _script("i18n_import_tuples")
    args = [str(module), "_TEXTS", "--rewrite", "--catalogue", str(catalogue)]
    assert script.main(args) == 0
    with catalogue.open("rb") as file:
        added = {m.context: (m.id, m.string) for m in read_po(file) if m.context}
    assert added["pages:greeting"] == ("Hello, {name}!", "Olá, {name}!")
    assert added["pages:kept"] == ("Kept", "Mantido")
    assert added["console:overview"] == ("Overview", "Visão geral")  # the rest is untouched
    rewritten = module.read_text()
    assert "_TEXTS: dict[str, tuple[str, str]] = {\n}" in rewritten
    assert "def other()" in rewritten
    # Run again on a module holding a different text for a converted key: a conflict.
    module.write_text(textwrap.dedent(MODULE).replace("Mantido", "Guardado"))
    assert script.main(args) == 1
    assert "Guardado" not in catalogue.read_text()


# The `raise <ServiceError subclass>(first, ...)` whose first argument may stay other than an
# `N_("...")` call, by file and argument (as `ast.unparse` writes it).
NOT_MARKED = {
    # A domain error with English text only (no `message(language)`), kept as it is.
    ("services/campaign_preview.py", "exc.message"): "rec.CampaignError",
    ("services/campaign_replay.py", "exc.message"): "rec.CampaignError",
    ("services/campaigns.py", "exc.message"): "rec.CampaignError",
    ("services/flows.py", "exc.message"): "fl.FlowError",
    ("services/policies.py", "exc.message"): "pol.PolicyError",
    ("services/voice.py", "exc.message"): "vc.VoiceError",
    ("services/event_subscriptions.py", "problem"): "ev.check_patterns' English text",
    ("services/record_activity.py", "problem[1]"): "event_problem's English text",
    # The platform's body is not what it sends: the adapter's English words for it.
    ("entrypoints/api/webhooks.py", "str(exc)"): "BadUpdate from the channel adapter",
    ("entrypoints/manager_bot/webhook.py", "str(exc)"): "BadUpdate from the channel adapter",
    # `parsing(malformed)`: each caller passes its own N_() msgid.
    ("services/errors.py", "malformed"): "an N_() msgid of the caller",
}


def _service_errors(trees: dict[str, ast.Module]) -> set[str]:
    names, grew = {"ServiceError"}, True
    while grew:
        grew = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names:
                    bases = {
                        b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases
                    }
                    if bases & names:
                        names.add(node.name)
                        grew = True
    return names


def unmarked_raises(trees: dict[str, ast.Module]) -> set[tuple[str, str]]:
    """(file, first argument) of each `raise <ServiceError subclass>(...)` whose message is
    not an `N_("...")` call."""
    names = _service_errors(trees)
    found = set()
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            if not (isinstance(func, ast.Name) and func.id in names):
                continue
            first = node.exc.args[0] if node.exc.args else None
            marked = isinstance(first, ast.Call) and ast.unparse(first.func) == "N_"
            if not marked:
                found.add((path, ast.unparse(first) if first is not None else "<none>"))
    return found


def _sources() -> dict[str, ast.Module]:
    src = ROOT / "src/reengage"
    return {str(p.relative_to(src)): ast.parse(p.read_text()) for p in src.rglob("*.py")}


def test_every_service_error_is_raised_with_a_marked_message() -> None:
    unmarked = unmarked_raises(_sources())
    assert unmarked - set(NOT_MARKED) == set(), 'write N_("English {value}") with the values apart'
    assert set(NOT_MARKED) - unmarked == set(), "no longer raised: drop it from NOT_MARKED"


def test_the_unmarked_raise_check_finds_them() -> None:
    code = textwrap.dedent(
        """
        class Conflict(NotFound): ...
        raise NotFound(N_("bot {bot_id} not found"), "bot_id", bot_id=1)
        raise Conflict(f"bot {bot_id} taken")
        raise InvalidInput("plain", "x")
        raise InvalidInput(str(exc)) from exc
        raise ValueError(f"not a service error {x}")
        """
    )
    trees = {
        "a.py": ast.parse(code),
        "b.py": ast.parse(
            "class NotFound(ServiceError): ...\nclass InvalidInput(ServiceError): ..."
        ),
    }
    assert unmarked_raises(trees) == {
        ("a.py", "f'bot {bot_id} taken'"),
        ("a.py", "'plain'"),
        ("a.py", "str(exc)"),
    }


def test_a_wrapped_domain_error_says_itself_in_each_language() -> None:
    error = InvalidInput.of(ScheduleError("time", "25:00"), "time_zone")
    assert (error.text("pt-BR"), error.text("en")) == (
        "Horário inválido: 25:00",
        "Invalid time: 25:00",
    )
    assert (error.message, error.field) == ("Invalid time: 25:00", "time_zone")
    missing = NotFound(i18n.N_("version {version} not found"), "version", version=3)
    assert missing.text("pt-BR") == "versão 3 não encontrada"
    assert missing.text("en") == missing.message == "version 3 not found"
