"""The console's texts: pt-BR by default, English per browser (the language switch)."""

from __future__ import annotations

from typing import Any

LANGUAGES = ("pt-BR", "en")

_TEXTS: dict[str, tuple[str, str]] = {
    "console": ("Console", "Console"),
    "overview": ("Visão geral", "Overview"),
    "bots": ("Bots", "Bots"),
    "api_keys": ("Chaves de API", "API keys"),
    "people": ("Pessoas", "People"),
    "audit": ("Auditoria", "Audit log"),
    "api_docs": ("Documentação da API", "API docs"),
    "logout": ("Sair", "Log out"),
    "login": ("Entrar", "Log in"),
    "login_title": ("Entrar no reengage", "Log in to reengage"),
    "email": ("E-mail", "Email"),
    "password": ("Senha", "Password"),
    "language": ("Idioma", "Language"),
    "switch_language": ("English", "Português"),
    "signed_in_as": ("{email} · {role} · {org}", "{email} · {role} · {org}"),
    "role_owner": ("proprietário", "owner"),
    "role_editor": ("editor", "editor"),
    "role_viewer": ("leitor", "viewer"),
    "name": ("Nome", "Name"),
    "channel": ("Canal", "Channel"),
    "created": ("Criado em", "Created"),
    "status": ("Situação", "Status"),
    "actions": ("Ações", "Actions"),
    "none_yet": ("Nada por aqui ainda.", "Nothing here yet."),
    "no_bots": (
        "Nenhum bot cadastrado. Adicione um em Bots.",
        "No bots yet. Add one under Bots.",
    ),
    "active_now": ("Conversas ativas agora", "Conversations active now"),
    "episodes_running": ("Episódios em andamento", "Episodes running"),
    "sent_today": ("Mensagens enviadas hoje (UTC)", "Messages sent today (UTC)"),
    "problems_today": ("Falhas e pulos hoje, por motivo", "Failures and skips today, by reason"),
    "oldest_due": ("Timer vencido mais antigo", "Oldest due timer"),
    "nothing_late": ("nenhum atrasado", "none late"),
    "late_by": ("venceu {at} (há {late})", "due {at} ({late} ago)"),
    "add_telegram_bot": ("Adicionar um bot do Telegram", "Add a Telegram bot"),
    "bot_token": ("Token do bot (do @BotFather)", "Bot token (from @BotFather)"),
    "add": ("Adicionar", "Add"),
    "token_checked": (
        "O token é verificado no Telegram (getMe) antes de salvar.",
        "The token is checked with Telegram (getMe) before it is saved.",
    ),
    "bot_title": ("Bot {name}", "Bot {name}"),
    "has_credentials": ("Credenciais salvas", "Credentials stored"),
    "webhook": ("Webhook", "Webhook"),
    "webhook_set": ("registrado", "registered"),
    "webhook_unset": ("não registrado", "not registered"),
    "set_webhook": ("Registrar webhook", "Set webhook"),
    "webhook_done": ("Webhook registrado em {url}", "Webhook registered at {url}"),
    "live_status": ("Situação no Telegram", "Status on Telegram"),
    "checking": ("verificando…", "checking…"),
    "status_ok": ("token aceito: @{username}", "token accepted: @{username}"),
    "status_refused": ("token recusado: {detail}", "token refused: {detail}"),
    "status_unchecked": (
        "sem verificação ao vivo para este canal",
        "no live check for this channel",
    ),
    "yes": ("sim", "yes"),
    "no": ("não", "no"),
    "prefix": ("Prefixo", "Prefix"),
    "revoked": ("Revogada em {at}", "Revoked {at}"),
    "active": ("ativa", "active"),
    "revoke": ("Revogar", "Revoke"),
    "create_key": ("Criar chave", "Create key"),
    "key_created": (
        "Chave criada. Copie agora, ela não será mostrada de novo:",
        "Key created. Copy it now, it will not be shown again:",
    ),
    "role": ("Papel", "Role"),
    "invite": ("Convidar", "Invite"),
    "open_invites": ("Convites abertos", "Open invitations"),
    "expires": ("Expira em", "Expires"),
    "invite_created": (
        "Envie este link à pessoa (vale 7 dias, uma vez):",
        "Send this link to the person (valid 7 days, once):",
    ),
    "invite_title": ("Criar sua conta", "Create your account"),
    "invite_intro": (
        "Você foi convidado como {role}. Escolha seu e-mail e uma senha (10 a 128 caracteres).",
        "You were invited as {role}. Choose your email and a password (10 to 128 characters).",
    ),
    "create_account": ("Criar conta", "Create account"),
    "when": ("Quando", "When"),
    "who": ("Quem", "Who"),
    "what": ("O quê", "What"),
    "subject": ("Objeto", "Subject"),
    "before": ("Antes", "Before"),
    "after": ("Depois", "After"),
    "error_title": ("Algo não deu certo", "Something went wrong"),
    "back": ("Voltar", "Back"),
    "err_login": ("E-mail ou senha incorretos.", "Wrong email or password."),
    "err_csrf": (
        "O formulário expirou ou não veio desta página. Recarregue e tente de novo.",
        "The form expired or did not come from this page. Reload and try again.",
    ),
    "err_forbidden": (
        "Seu papel não permite esta ação.",
        "Your role does not allow this action.",
    ),
    "err_not_found": ("Não encontrado.", "Not found."),
    "err_invalid": ("Valor inválido: {field}.", "Invalid value: {field}."),
    "err_email": ("Informe um e-mail válido.", "Enter a valid email address."),
    "err_email_taken": ("Este e-mail já tem uma conta.", "This email already has an account."),
    "err_password": (
        "A senha precisa ter de 10 a 128 caracteres.",
        "The password needs 10 to 128 characters.",
    ),
    "err_invite": (
        "Este convite não existe, já foi usado ou expirou.",
        "This invitation is unknown, used or expired.",
    ),
    "err_name": (
        "O nome precisa ter de 1 a 200 caracteres.",
        "The name needs 1 to 200 characters.",
    ),
    "err_token": (
        "O Telegram recusou este token: {detail}",
        "Telegram refused this token: {detail}",
    ),
    "err_token_format": (
        "Cole o token inteiro, como 123456:ABC-def…",
        "Paste the whole token, like 123456:ABC-def…",
    ),
    "err_webhook": (
        "Não foi possível registrar o webhook: {detail}",
        "The webhook could not be set: {detail}",
    ),
}


def text(language: str, key: str, **values: Any) -> str:
    """The text `key` in `language` (pt-BR when it is not one of ours)."""
    pair = _TEXTS[key]
    chosen = pair[1] if language == "en" else pair[0]
    return chosen.format(**values) if values else chosen


def keys() -> set[str]:
    return set(_TEXTS)
