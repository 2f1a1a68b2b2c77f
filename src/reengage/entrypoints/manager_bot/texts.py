"""The manager bot's texts: pt-BR by default, English per admin."""

from __future__ import annotations

from typing import Any

DEFAULT = "pt-BR"

_TEXTS: dict[str, tuple[str, str]] = {
    "refused": (
        "Desculpe, este bot é só para administradores convidados. / "
        "Sorry, this bot is only for invited admins.",
        "Desculpe, este bot é só para administradores convidados. / "
        "Sorry, this bot is only for invited admins.",
    ),
    "expired": ("Este botão expirou, envie /start", "This button has expired, send /start"),
    "bad_invite": (
        "Código de convite inválido, já usado ou expirado.",
        "Invalid, used or expired invite code.",
    ),
    "welcome": ("Bem-vindo! Você agora administra {org}.", "Welcome! You now manage {org}."),
    "menu": ("O que deseja configurar?", "What would you like to set up?"),
    "btn_recovery": ("🔁 Recuperação", "🔁 Recovery"),
    "btn_timeouts": ("⏱ Tempos de inatividade", "⏱ Inactivity timeouts"),
    "btn_language": ("🌐 English", "🌐 Português"),
    "btn_menu": ("🏠 Menu", "🏠 Menu"),
    "btn_back": ("⬅ Voltar", "⬅ Back"),
    "btn_cancel": ("✖ Cancelar", "✖ Cancel"),
    "no_bots": ("Nenhum bot cadastrado ainda.", "No bots registered yet."),
    "choose_bot": ("Escolha um bot:", "Choose a bot:"),
    "yes": ("sim", "yes"),
    "no": ("não", "no"),
    "none": ("nenhuma", "none"),
    "campaign": (
        "🔁 Recuperação — {bot}\n"
        "Ativa: {enabled} · versão publicada: {version}\n"
        "Inatividade: {threshold}\n"
        "Fuso horário: {zone}\n"
        "Ignorar pagantes: {paid}\n"
        "Janela de envio: {window}\n"
        "Exclusões: {exclusions}\n"
        "Passos: {steps}",
        "🔁 Recovery — {bot}\n"
        "Enabled: {enabled} · published version: {version}\n"
        "Inactivity: {threshold}\n"
        "Time zone: {zone}\n"
        "Ignore paying users: {paid}\n"
        "Send window: {window}\n"
        "Exclusions: {exclusions}\n"
        "Steps: {steps}",
    ),
    "btn_enable": ("▶ Ativar", "▶ Enable"),
    "btn_disable": ("⏸ Desativar", "⏸ Disable"),
    "btn_threshold": ("⏳ Inatividade", "⏳ Inactivity"),
    "btn_zone": ("🌍 Fuso", "🌍 Time zone"),
    "btn_paid": ("💳 Ignorar pagantes: {v}", "💳 Ignore payers: {v}"),
    "btn_window": ("🕗 Janela", "🕗 Window"),
    "btn_exclusions": ("🚫 Exclusões", "🚫 Exclusions"),
    "btn_steps": ("🪜 Passos", "🪜 Steps"),
    "btn_preview": ("👁 Prévia", "👁 Preview"),
    "btn_publish": ("🚀 Publicar", "🚀 Publish"),
    "btn_results": ("📊 Resultados", "📊 Results"),
    "btn_replay": ("🔁 Simular 30 dias", "🔁 Replay 30 days"),
    "replay": (
        "🔁 O rascunho nos últimos 30 dias de {bot} (nada enviado):",
        "🔁 The draft over {bot}'s last 30 days (nothing sent):",
    ),
    "replay_started": (
        "{contacts} contatos · {silences} silêncios · {episodes} episódios",
        "{contacts} contacts · {silences} silences · {episodes} episodes",
    ),
    "replay_step": (
        "Passo {n}: {sent} envios · {before} voltaram antes · {wasted} voltariam sozinhos · "
        "{collisions} junto do timeout",
        "Step {n}: {sent} sends · {before} came back before · {wasted} would have come back "
        "anyway · {collisions} next to the timeout",
    ),
    "replay_queue": (
        "Fila no pico: {wait}s às {hour}h ({rate}/s)",
        "Peak queue: {wait}s at {hour}:00 ({rate}/s)",
    ),
    "replay_usual": (
        "Ativos em 1 h após o envio: horário fixo {fixed} × horário habitual {usual}",
        "Active within 1 h of the send: fixed time {fixed} vs usual hour {usual}",
    ),
    "results": ("📊 Resultados — {bot}", "📊 Results — {bot}"),
    "results_empty": ("Nenhum episódio ainda.", "No episodes yet."),
    "results_older": (
        "Versões anteriores: {n} (em GET /v1/bots/{{bot}}/campaign/results)",
        "Older versions: {n} (in GET /v1/bots/{{bot}}/campaign/results)",
    ),
    "results_version": (
        "Versão {v} · retorno em {ret}, conversão em {conv}",
        "Version {v} · return within {ret}, conversion within {conv}",
    ),
    "results_started": (
        "Iniciados: {t} com a campanha, {h} no controle",
        "Started: {t} with the campaign, {h} in the holdout",
    ),
    "results_step": ("Passo {n}: {counts}", "Step {n}: {counts}"),
    "results_holdout": ("Controle: {counts}", "Holdout: {counts}"),
    "count_sent": ("enviados {v}", "sent {v}"),
    "count_delivered": ("entregues {v}", "delivered {v}"),
    "count_read": ("lidos {v}", "read {v}"),
    "count_returned": ("voltaram {v}", "returned {v}"),
    "count_converted": ("pagaram {v}", "paid {v}"),
    "count_opted_out": ("saíram {v}", "opted out {v}"),
    "count_blocked": ("bloquearam {v}", "blocked {v}"),
    "count_failed": ("falharam {v}", "failed {v}"),
    "count_skipped": ("pulados {v}", "skipped {v}"),
    "lift_return": ("Retorno", "Return"),
    "lift_conversion": ("Conversão", "Conversion"),
    "lift": (
        "{what}: {t} com a campanha × {h} no controle: {d} pontos (IC 95%: {lo} a {hi})",
        "{what}: {t} with the campaign vs {h} in the holdout: {d} points (95% CI: {lo} to {hi})",
    ),
    "lift_unknown": (
        "{what}: {t} com a campanha × {h} no controle — dados insuficientes (mínimo: {n} "
        "episódios em cada grupo e {s} sucessos no total)",
        "{what}: {t} with the campaign vs {h} in the holdout — not enough data (minimum: {n} "
        "episodes in each group and {s} successes in all)",
    ),
    "publish_first": ("Publique a campanha antes de ativá-la.", "Publish the campaign first."),
    "published": ("Publicada: versão {v}", "Published: version {v}"),
    "ask_threshold": (
        "Envie o tempo de inatividade (ex.: 10m, 2h).",
        "Send the inactivity threshold (e.g. 10m, 2h).",
    ),
    "ask_zone": (
        "Envie o fuso horário IANA (ex.: America/Sao_Paulo).",
        "Send the IANA time zone (e.g. America/Sao_Paulo).",
    ),
    "ask_window": (
        "Envie a janela de envio (ex.: 08:00-21:00) ou - para remover.",
        "Send the send window (e.g. 08:00-21:00) or - to remove it.",
    ),
    "exclusions": ("🚫 Usuários excluídos: {n}", "🚫 Excluded users: {n}"),
    "btn_add_exclusion": ("➕ Excluir usuário", "➕ Exclude a user"),
    "ask_exclusion": ("Envie o ID do usuário a excluir.", "Send the user id to exclude."),
    "steps": ("🪜 Passos da campanha:", "🪜 Campaign steps:"),
    "no_steps": ("Nenhum passo ainda.", "No steps yet."),
    "btn_add_step": ("➕ Passo", "➕ Step"),
    "ask_step": (
        "Envie o agendamento do novo passo (30m, 2h, 1d12h, amanhã 09:00, +2d 18:30).",
        "Send the new step's schedule (30m, 2h, 1d12h, tomorrow 09:00, +2d 18:30).",
    ),
    "step": ("Passo {n}: {schedule}\nBlocos:", "Step {n}: {schedule}\nBlocks:"),
    "no_blocks": ("(nenhum bloco)", "(no blocks)"),
    "btn_schedule": ("🗓 Agenda", "🗓 Schedule"),
    "btn_up": ("⬆ Subir", "⬆ Up"),
    "btn_down": ("⬇ Descer", "⬇ Down"),
    "btn_delete_step": ("🗑 Excluir passo", "🗑 Delete step"),
    "btn_add_block": ("➕ Bloco", "➕ Block"),
    "ask_schedule": (
        "Envie o novo agendamento (30m, 2h, 1d12h, amanhã 09:00, +2d 18:30).",
        "Send the new schedule (30m, 2h, 1d12h, tomorrow 09:00, +2d 18:30).",
    ),
    "ask_block": (
        "Envie um texto, ou uma foto, vídeo, áudio, documento ou animação (com legenda, se "
        "quiser).",
        "Send a text, or a photo, video, audio, document or animation (with a caption if you "
        "like).",
    ),
    "block": (
        "Bloco {n} do passo {step}: {kind}\n{text}\nAtraso: {delay}\nApagar após: {delete}",
        "Block {n} of step {step}: {kind}\n{text}\nDelay: {delay}\nDelete after: {delete}",
    ),
    "btn_caption": ("✏ Legenda", "✏ Caption"),
    "btn_delay": ("⌛ Atraso", "⌛ Delay"),
    "btn_auto_delete": ("🧹 Apagar após", "🧹 Delete after"),
    "btn_delete_block": ("🗑 Excluir bloco", "🗑 Delete block"),
    "ask_caption": ("Envie a legenda (ou - para remover).", "Send the caption (or - to remove)."),
    "ask_delay": (
        "Envie o atraso antes deste bloco (ex.: 5s, 1m; 0s para nenhum).",
        "Send the delay before this block (e.g. 5s, 1m; 0s for none).",
    ),
    "ask_auto_delete": (
        "Envie após quanto tempo apagar a mensagem (ex.: 1h) ou - para nunca.",
        "Send how long after sending to delete the message (e.g. 1h) or - for never.",
    ),
    "never": ("nunca", "never"),
    "preview": (
        "👁 Prévia para um usuário inativo desde agora:",
        "👁 Preview for a user inactive since now:",
    ),
    "preview_empty": ("Nenhum passo com blocos ativos.", "No step with active blocks."),
    "unsupported": (
        "Envie um texto ou uma mídia (foto, vídeo, áudio, documento, animação).",
        "Send a text or a media file (photo, video, audio, document, animation).",
    ),
    "too_big": (
        "Arquivo grande demais para baixar (máx. 20 MB).",
        "File too large to download (20 MB max).",
    ),
    "download_failed": ("Não consegui baixar o arquivo: {v}", "Could not download the file: {v}"),
    "invalid": ("Valor inválido: {v}", "Invalid value: {v}"),
    "saved": ("✅ Salvo.", "✅ Saved."),
    "timeouts": (
        "⏱ Inatividade — {bot}\nAtivo: {enabled}\nTempo limite: {timeout}\nAção final: {action}",
        "⏱ Inactivity — {bot}\nEnabled: {enabled}\nTimeout: {timeout}\nFinal action: {action}",
    ),
    "inherited": ("(herdado)", "(inherited)"),
    "btn_timeout": ("⏳ Tempo limite", "⏳ Timeout"),
    "ask_timeout": (
        "Envie o tempo limite (de 1m a 30d, ex.: 30m, 2h).",
        "Send the timeout (1m to 30d, e.g. 30m, 2h).",
    ),
    "timeout_range": (
        "O tempo limite deve ficar entre 1 minuto e 30 dias: {v}",
        "The timeout must be between 1 minute and 30 days: {v}",
    ),
    "action_close": ("encerrar", "close"),
    "action_handoff": ("transferir a um agente", "hand off to an agent"),
    "action_none": ("nenhuma", "none"),
    "action_fallback_flow": ("ir para outro fluxo", "go to another flow"),
    "btn_action": ("Ação: {v}", "Action: {v}"),
    "kind_text": ("texto", "text"),
    "kind_photo": ("foto", "photo"),
    "kind_video": ("vídeo", "video"),
    "kind_audio": ("áudio", "audio"),
    "kind_document": ("documento", "document"),
    "kind_animation": ("animação", "animation"),
    "kind_template": ("template", "template"),
}


def t(language: str, key: str, **values: Any) -> str:
    """The text `key` in the admin's language, with `values` filled in."""
    pt, en = _TEXTS[key]
    return (en if language == "en" else pt).format(**values)
