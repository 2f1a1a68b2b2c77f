"""An operator's hand on recovery episodes: stop one contact's episode, and start the bot's
campaign for oneself now (to see it arrive), through the engine's own path."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from reengage import metrics
from reengage.adapters.db.models import Contact, Conversation, Episode
from reengage.delivery.outcome import latest_seqs
from reengage.domain import recovery as rec
from reengage.domain.timer import Purpose, timer_key
from reengage.i18n import N_
from reengage.runtime import Runtime
from reengage.services.audit_log import record_change
from reengage.services.errors import InvalidInput
from reengage.services.tenancy import get_bot, owned, scoped
from reengage.silence.episodes import Started, end_episode
from reengage.silence.handler import SilencesSeen
from reengage.silence.live_campaign import LiveCampaign, live_campaign
from reengage.timers.handler import FollowUps

# Why a test send is refused: the `field` of the InvalidInput (the console names each).
NOT_A_CONTACT = "user_id"
UNREACHABLE = "contact"
NO_CAMPAIGN = "campaign"
ALREADY_RAN = "episode"


def stop_episode(runtime: Runtime, org_id: int, episode_id: int, actor: str) -> bool:
    """End a running episode as `stopped/operator`: its next step never goes out, nor any of
    its blocks still waiting. False when it had already ended (nothing to do)."""
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        episode = owned(session, Episode, org_id, episode_id, for_update=True)
        if episode.status != "running":
            return False
        end_episode(session, episode, rec.EndEpisode("stopped", "operator"), now)
        record_change(
            session,
            org_id,
            actor,
            "episode.stop",
            f"episode {episode_id}",
            now,
            before={"status": "running"},
            after={"status": "stopped", "end_reason": "operator"},
        )
    metrics.episodes_ended("stopped", "operator")
    runtime.timers.cancel([timer_key(Purpose.RECOVERY_STEP, str(episode_id))])
    return True


def send_campaign_now(runtime: Runtime, org_id: int, bot_id: int, user_id: str, actor: str) -> int:
    """Start the bot's live campaign for one contact (the operator themselves) at once: an
    episode of their current silence whose first step is due now; the later steps keep their
    schedules. It runs like any other episode (the step timer, the delivery records, ended by
    their answer). Asking twice gives the same episode."""
    now = runtime.clock.now()
    follow = FollowUps()
    # Their latest activity in the database first (hot in Redis until flushed), as a silence
    # timer does before it decides.
    runtime.activity.flush_subject(bot_id, user_id, now)
    with runtime.sessions.begin() as session:
        get_bot(session, org_id, bot_id)
        contact = session.scalar(
            scoped(
                Contact, org_id, Contact.bot_id == bot_id, Contact.external_id == user_id
            ).with_for_update()
        )
        conv = _latest_conversation(session, org_id, contact)
        if contact is None or conv is None:
            raise InvalidInput(N_("this user has not written to the bot yet"), NOT_A_CONTACT)
        if contact.blocked_at is not None or contact.opted_out_at is not None:
            raise InvalidInput(N_("this contact blocked the bot or opted out"), UNREACHABLE)
        live = live_campaign(session, bot_id)
        if live is None:
            raise InvalidInput(N_("the bot has no published and enabled campaign"), NO_CAMPAIGN)
        row, campaign = live, live.campaign
        if contact.external_id in row.exclusions:
            raise InvalidInput(N_("this contact is excluded from the campaign"), UNREACHABLE)
        seq = latest_seqs(session, runtime.activity, [contact]).get(contact.id)
        seq = conv.activity_seq if seq is None else seq
        existing = session.scalar(
            scoped(Episode, org_id, Episode.contact_id == contact.id, Episode.seq == seq)
        )
        if existing is not None:
            if existing.status == "running":
                return existing.id
            raise InvalidInput(N_("an episode already ran since their last message"), ALREADY_RAN)
        first = campaign.next_step()
        if first is None:
            raise InvalidInput(N_("the campaign sends nothing"), NO_CAMPAIGN)
        seen = SilencesSeen({}, [contact, conv])
        episode = _episode_row(row, conv, contact, seq, first, now)
        seen.started.append(Started(episode, conv, follow))
        seen.write(session, now)  # the episode, its first step's timer, its events
        episode_id = int(follow.timers[0].payload["episode_id"] or 0)
        record_change(
            session,
            org_id,
            actor,
            "episode.test_send",
            f"episode {episode_id}",
            now,
            after={"bot_id": bot_id, "user_id": user_id, "version": row.version},
        )
    runtime.timers.schedule(follow.timers)
    return episode_id


def _latest_conversation(
    session: Session, org_id: int, contact: Contact | None
) -> Conversation | None:
    if contact is None:
        return None
    return session.scalar(
        scoped(Conversation, org_id, Conversation.contact_id == contact.id)
        .order_by(Conversation.id.desc())
        .limit(1)
    )


def _episode_row(
    campaign: LiveCampaign,
    conv: Conversation,
    contact: Contact,
    seq: int,
    first: int,
    now: datetime,
) -> dict[str, object]:
    return {
        "org_id": conv.org_id,
        "campaign_id": campaign.id,
        "version": campaign.version,
        "bot_id": conv.bot_id,
        "contact_id": contact.id,
        "conversation_id": conv.id,
        "seq": seq,
        "holdout": False,  # the operator wants to see it: never in the control group
        "test_send": True,  # and never in the campaign's results
        "status": "running",
        "next_step": first,
        "next_due_at": now,
        "started_at": now,
    }
