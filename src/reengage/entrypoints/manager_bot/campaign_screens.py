"""The recovery menus as (text, signed keyboard) screens, built from plain data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from reengage.domain import results as res
from reengage.domain import schedule as sch
from reengage.domain.duration import format_duration
from reengage.entrypoints.manager_bot.actions import MENU, RECOVERY, Menu, Rec
from reengage.entrypoints.manager_bot.context import Keys, Screen, lines
from reengage.entrypoints.manager_bot.texts import t
from reengage.services import campaign_results as cr
from reengage.services import campaigns
from reengage.services.campaign_preview import Preview
from reengage.services.errors import NotFound
from reengage.services.tenancy import get_bot


@dataclass(frozen=True, slots=True)
class CampaignView:
    bot_id: int
    bot_name: str
    enabled: bool
    version: int
    draft: dict[str, Any]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.draft.get("steps") or [])

    @property
    def exclusions(self) -> list[str]:
        return [str(u) for u in self.draft.get("exclusions") or []]


def load_view(session: Session, org_id: int, bot_id: int) -> CampaignView:
    bot = get_bot(session, org_id, bot_id)
    try:
        row = campaigns.get_campaign(session, org_id, bot_id)
    except NotFound:
        return CampaignView(bot.id, bot.name, False, 0, {})
    return CampaignView(bot.id, bot.name, row.enabled, row.version, campaigns.draft_of(row))


def _yes(lang: str, value: bool) -> str:
    return t(lang, "yes" if value else "no")


def bots_screen(keys: Keys, bots: list[tuple[int, str]], prefix: str, action: int) -> Screen:
    lang = keys.admin.language
    for bot_id, name in bots:
        keys.row(keys.button(f"🤖 {name}", prefix, action, bot_id))
    keys.row(keys.button(t(lang, "btn_menu"), MENU, Menu.MAIN))
    return t(lang, "choose_bot" if bots else "no_bots"), keys.markup()


def campaign_screen(keys: Keys, view: CampaignView) -> Screen:
    lang, bot = keys.admin.language, view.bot_id
    draft = view.draft
    window = draft.get("send_window")
    text = t(
        lang,
        "campaign",
        bot=view.bot_name,
        enabled=_yes(lang, view.enabled),
        version=view.version,
        threshold=draft.get("threshold", "10m"),
        zone=draft.get("time_zone", "America/Sao_Paulo"),
        paid=_yes(lang, bool(draft.get("ignore_paid", True))),
        window=f"{window['start']}-{window['end']}" if window else t(lang, "none"),
        exclusions=len(view.exclusions),
        steps=len(view.steps),
    )
    paid = _yes(lang, bool(draft.get("ignore_paid", True)))
    toggle = "btn_disable" if view.enabled else "btn_enable"
    keys.row(keys.button(t(lang, toggle), RECOVERY, Rec.TOGGLE_ENABLED, bot))
    keys.row(
        keys.button(t(lang, "btn_threshold"), RECOVERY, Rec.ASK_THRESHOLD, bot),
        keys.button(t(lang, "btn_zone"), RECOVERY, Rec.ASK_ZONE, bot),
    )
    keys.row(
        keys.button(t(lang, "btn_paid", v=paid), RECOVERY, Rec.TOGGLE_PAID, bot),
        keys.button(t(lang, "btn_window"), RECOVERY, Rec.ASK_WINDOW, bot),
    )
    keys.row(
        keys.button(t(lang, "btn_exclusions"), RECOVERY, Rec.EXCLUSIONS, bot),
        keys.button(t(lang, "btn_steps"), RECOVERY, Rec.STEPS, bot),
    )
    keys.row(
        keys.button(t(lang, "btn_preview"), RECOVERY, Rec.PREVIEW, bot),
        keys.button(t(lang, "btn_publish"), RECOVERY, Rec.PUBLISH, bot),
    )
    keys.row(
        keys.button(t(lang, "btn_results"), RECOVERY, Rec.RESULTS, bot),
        keys.button(t(lang, "btn_replay"), RECOVERY, Rec.REPLAY, bot),
    )
    keys.row(keys.button(t(lang, "btn_back"), RECOVERY, Rec.BOTS))
    return text, keys.markup()


def exclusion_ref(user_id: str, index: int) -> tuple[int, int]:
    """A numeric id travels as itself; any other as its position (`extra` 1)."""
    if user_id.isdigit() and int(user_id) < 2**63:
        return int(user_id), 0
    return index, 1


def exclusions_screen(keys: Keys, view: CampaignView) -> Screen:
    lang, bot = keys.admin.language, view.bot_id
    for index, user_id in enumerate(view.exclusions):
        arg, extra = exclusion_ref(user_id, index)
        keys.row(keys.button(f"❌ {user_id}", RECOVERY, Rec.REMOVE_EXCLUSION, bot, arg, extra))
    keys.row(keys.button(t(lang, "btn_add_exclusion"), RECOVERY, Rec.ASK_EXCLUSION, bot))
    keys.row(keys.button(t(lang, "btn_back"), RECOVERY, Rec.CAMPAIGN, bot))
    return t(lang, "exclusions", n=len(view.exclusions)), keys.markup()


def schedule_words(raw: str, lang: str) -> str:
    return sch.describe(sch.parse_schedule(raw), lang)


def steps_screen(keys: Keys, view: CampaignView) -> Screen:
    lang, bot = keys.admin.language, view.bot_id
    text = [t(lang, "steps")] if view.steps else [t(lang, "no_steps")]
    for index, step in enumerate(view.steps):
        words = schedule_words(step["schedule"], lang)
        count = len(step.get("blocks") or [])
        text.append(f"{index + 1}. {words} · {count} 🧱")
        keys.row(keys.button(f"{index + 1}. {words}", RECOVERY, Rec.STEP, bot, index))
    keys.row(keys.button(t(lang, "btn_add_step"), RECOVERY, Rec.ASK_STEP, bot))
    keys.row(keys.button(t(lang, "btn_back"), RECOVERY, Rec.CAMPAIGN, bot))
    return lines(text), keys.markup()


def block_summary(block: dict[str, Any], lang: str) -> str:
    kind = str(block.get("kind", "text"))
    text = str(block.get("text") or block.get("caption") or "")
    short = text if len(text) <= 30 else text[:29] + "…"
    effects = []
    if block.get("delay") and block["delay"] != "0s":
        effects.append(f"⌛{block['delay']}")
    if block.get("auto_delete_after"):
        effects.append(f"🧹{block['auto_delete_after']}")
    return " ".join([t(lang, f"kind_{kind}") + ":", short, *effects]).strip()


def step_screen(keys: Keys, view: CampaignView, index: int) -> Screen:
    lang, bot = keys.admin.language, view.bot_id
    step = view.steps[index]
    blocks = step.get("blocks") or []
    text = [t(lang, "step", n=index + 1, schedule=schedule_words(step["schedule"], lang))]
    text += [f"{j + 1}. {block_summary(b, lang)}" for j, b in enumerate(blocks)] or [
        t(lang, "no_blocks")
    ]
    keys.row(
        keys.button(t(lang, "btn_schedule"), RECOVERY, Rec.ASK_SCHEDULE, bot, index),
        keys.button(t(lang, "btn_up"), RECOVERY, Rec.MOVE_UP, bot, index),
        keys.button(t(lang, "btn_down"), RECOVERY, Rec.MOVE_DOWN, bot, index),
    )
    for j, block in enumerate(blocks):
        label = f"{j + 1}. {block_summary(block, lang)}"
        keys.row(keys.button(label, RECOVERY, Rec.BLOCK, bot, index, j))
    keys.row(keys.button(t(lang, "btn_add_block"), RECOVERY, Rec.ASK_BLOCK, bot, index))
    keys.row(keys.button(t(lang, "btn_delete_step"), RECOVERY, Rec.DELETE_STEP, bot, index))
    keys.row(keys.button(t(lang, "btn_back"), RECOVERY, Rec.STEPS, bot))
    return lines(text), keys.markup()


def block_screen(keys: Keys, view: CampaignView, step: int, index: int) -> Screen:
    lang, bot = keys.admin.language, view.bot_id
    block = view.steps[step]["blocks"][index]
    kind = str(block.get("kind", "text"))
    text = t(
        lang,
        "block",
        n=index + 1,
        step=step + 1,
        kind=t(lang, f"kind_{kind}"),
        text=block.get("text") or block.get("caption") or "",
        delay=block.get("delay", "0s"),
        delete=block.get("auto_delete_after") or t(lang, "never"),
    )
    if kind != "text":
        keys.row(keys.button(t(lang, "btn_caption"), RECOVERY, Rec.ASK_CAPTION, bot, step, index))
    keys.row(
        keys.button(t(lang, "btn_delay"), RECOVERY, Rec.ASK_DELAY, bot, step, index),
        keys.button(t(lang, "btn_auto_delete"), RECOVERY, Rec.ASK_AUTO_DELETE, bot, step, index),
    )
    keys.row(keys.button(t(lang, "btn_delete_block"), RECOVERY, Rec.DELETE_BLOCK, bot, step, index))
    keys.row(keys.button(t(lang, "btn_back"), RECOVERY, Rec.STEP, bot, step))
    return text, keys.markup()


def preview_screen(keys: Keys, view: CampaignView, preview: Preview) -> Screen:
    lang, steps = keys.admin.language, preview.steps
    when = "%Y-%m-%d %H:%M" if lang == "en" else "%d/%m/%Y %H:%M"
    zone = view.draft.get("time_zone", "America/Sao_Paulo")
    text = [t(lang, "preview")]
    for step in steps:
        text.append(f"{step.index + 1}. {step.local.strftime(when)} ({zone}) — {step.description}")
        for block in step.blocks:
            effects = f" ⌛{int(block.delay.total_seconds())}s" if block.delay else ""
            if block.auto_delete_after:
                minutes = int(block.auto_delete_after.total_seconds() // 60)
                effects += f" 🧹{minutes}min"
            label = t(lang, f"kind_{block.kind.value}")
            said = block.template.name if block.template else block.text or ""
            text.append(f"   • {label}: {said}{effects}")
        if step.index in preview.warnings:
            text.append(f"   ⚠️ {preview.warnings[step.index]}")
    if not steps:
        text.append(t(lang, "preview_empty"))
    keys.row(keys.button(t(lang, "btn_back"), RECOVERY, Rec.CAMPAIGN, view.bot_id))
    return lines(text), keys.markup()


def replay_screen(keys: Keys, view: CampaignView, result: dict[str, Any]) -> Screen:
    """`campaign_replay.run`'s figures, in words, in the admin's language."""
    lang = keys.admin.language
    text = [
        t(lang, "replay", bot=view.bot_name),
        t(
            lang,
            "replay_started",
            contacts=result["contacts"],
            silences=result["silences"],
            episodes=result["episodes_started"],
        ),
    ]
    for step in result["steps"]:
        text.append(
            t(
                lang,
                "replay_step",
                n=step["step"] + 1,
                sent=step["sent"],
                before=step["returned_before"],
                wasted=step["wasted"],
                collisions=step["timeout_collisions"],
            )
        )
    queue = result["queue"]
    if queue["peak_hour"] is not None:
        text.append(
            t(
                lang,
                "replay_queue",
                wait=f"{queue['peak_wait_seconds']:g}",
                hour=f"{queue['peak_hour']:02d}",
                rate=f"{queue['rate_per_second']:g}",
            )
        )
    usual = result.get("usual_vs_fixed")
    if usual:
        text.append(
            t(
                lang,
                "replay_usual",
                fixed=f"{usual['active_within_1h_fixed']:.0%}",
                usual=f"{usual['active_within_1h_usual']:.0%}",
            )
        )
    keys.row(keys.button(t(lang, "btn_back"), RECOVERY, Rec.CAMPAIGN, view.bot_id))
    return lines(text), keys.markup()


SCREEN_VERSIONS = 2


def results_screen(keys: Keys, view: CampaignView, results: cr.Results) -> Screen:
    """The funnel per version and step and the lift, in words, in the admin's language."""
    lang = keys.admin.language
    text = [t(lang, "results", bot=view.bot_name)]
    # The latest versions first; older ones stay in the API (a message holds 4,096 characters).
    for v in list(reversed(results.versions))[:SCREEN_VERSIONS]:
        windows = results.windows.get(v.version)
        ret, conv = (
            (windows.return_window, windows.conversion_window)
            if windows
            else (res.DEFAULT_RETURN_WINDOW, res.DEFAULT_CONVERSION_WINDOW)
        )
        text += [
            "",
            t(
                lang,
                "results_version",
                v=v.version,
                ret=format_duration(ret),
                conv=format_duration(conv),
            ),
            t(lang, "results_started", t=v.treatment.started, h=v.holdout.started),
        ]
        for index, (treated, _) in sorted(v.steps.items()):
            text.append(t(lang, "results_step", n=index + 1, counts=_step_counts(lang, treated)))
        if v.holdout.started:
            held: list[tuple[str, int | None]] = [
                ("returned", v.holdout.returned),
                ("converted", v.holdout.converted),
            ]
            text.append(t(lang, "results_holdout", counts=_counts(lang, held)))
        text.append(_lift(lang, "lift_return", v.return_lift))
        text.append(_lift(lang, "lift_conversion", v.conversion_lift))
    if not results.versions:
        text.append(t(lang, "results_empty"))
    if len(results.versions) > SCREEN_VERSIONS:
        text += ["", t(lang, "results_older", n=len(results.versions) - SCREEN_VERSIONS)]
    keys.row(keys.button(t(lang, "btn_back"), RECOVERY, Rec.CAMPAIGN, view.bot_id))
    return lines(text), keys.markup()


def _counts(lang: str, pairs: list[tuple[str, int | None]]) -> str:
    return " · ".join(
        t(lang, f"count_{name}", v=value) for name, value in pairs if value is not None
    )


def _step_counts(lang: str, s: res.StepCounts) -> str:
    return _counts(
        lang,
        [
            ("sent", s.sent),
            ("delivered", s.delivered),
            ("read", s.read),
            ("returned", s.returned),
            ("converted", s.converted),
            ("opted_out", s.opted_out),
            ("blocked", s.blocked),
            ("failed", s.failed),
            ("skipped", sum(s.skipped.values())),
        ],
    )


def _percent(lang: str, value: float, signed: bool = False) -> str:
    text = f"{value * 100:+.1f}" if signed else f"{value * 100:.1f}%"
    return text if lang == "en" else text.replace(".", ",")


def _lift(lang: str, what: str, lift: res.Lift) -> str:
    (s1, n1), (s2, n2) = lift.treatment, lift.holdout
    rates = {
        "what": t(lang, what),
        "t": _percent(lang, s1 / n1 if n1 else 0.0),
        "h": _percent(lang, s2 / n2 if n2 else 0.0),
    }
    if lift.difference is None or lift.low is None or lift.high is None:
        return t(lang, "lift_unknown", n=res.MIN_EPISODES, s=res.MIN_SUCCESSES, **rates)
    return t(
        lang,
        "lift",
        d=_percent(lang, lift.difference, signed=True),
        lo=_percent(lang, lift.low, signed=True),
        hi=_percent(lang, lift.high, signed=True),
        **rates,
    )
