"""The relational model: the source of truth."""

from reengage.adapters.db.models.base import NAMING, Base
from reengage.adapters.db.models.console import (
    AuditEntry,
    ConsoleInvite,
    ConsoleSession,
    ConsoleUser,
)
from reengage.adapters.db.models.conversations import (
    ActivityRecord,
    Contact,
    Conversation,
    ConversationEvent,
    FlowRow,
    InboundMessage,
    PolicyRow,
    SimulatorMessage,
)
from reengage.adapters.db.models.delivery import Delivery, DeliveryKey, TimerRow
from reengage.adapters.db.models.events_out import (
    EventAttempt,
    EventDelivery,
    EventSubscription,
    ManagerNotice,
    OutboundEvent,
)
from reengage.adapters.db.models.recovery import Campaign, CampaignVersion, Episode
from reengage.adapters.db.models.tenancy import (
    AdminInvite,
    ApiKey,
    Bot,
    ManagerAdmin,
    MediaAsset,
    MediaUpload,
    Organization,
    UsedButton,
)

__all__ = [
    "NAMING",
    "ActivityRecord",
    "AdminInvite",
    "ApiKey",
    "AuditEntry",
    "Base",
    "Bot",
    "Campaign",
    "CampaignVersion",
    "ConsoleInvite",
    "ConsoleSession",
    "ConsoleUser",
    "Contact",
    "Conversation",
    "ConversationEvent",
    "Delivery",
    "DeliveryKey",
    "Episode",
    "EventAttempt",
    "EventDelivery",
    "EventSubscription",
    "FlowRow",
    "InboundMessage",
    "ManagerAdmin",
    "ManagerNotice",
    "MediaAsset",
    "MediaUpload",
    "Organization",
    "OutboundEvent",
    "PolicyRow",
    "SimulatorMessage",
    "TimerRow",
    "UsedButton",
]
