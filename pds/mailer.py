"""Mail the PDS sends: confirmation codes and account notices (pds-README-self-hosting.md,
"Setting up SMTP").

`PDS_EMAIL_SMTP_URL` names the server: `smtps://user:pass@host:465/` (TLS from the start),
`smtp://user:pass@host:587/` (STARTTLS when the server offers it) or `smtp:///?sendmail=true`
(the local sendmail program). Without it, a development server writes each mail to the log
and a production one logs that nothing was sent. smtplib blocks, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Final, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from atcore.xrpc.errors import UpstreamFailure
from pds.config import PdsConfig

log = logging.getLogger(__name__)

SMTP_TIMEOUT: Final = 30.0
SENDMAIL: Final = "/usr/sbin/sendmail"


class MailError(Exception):
    """The mail could not be handed to the configured server."""


class Mailer(Protocol):
    async def send(self, to: str, subject: str, text: str) -> None: ...


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str


def _message(sender: str, to: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text)
    return message


@dataclass(frozen=True)
class SmtpMailer:
    """Sends through the SMTP server (or sendmail program) named by an smtp(s):// URL."""

    url: str
    sender: str

    async def send(self, to: str, subject: str, text: str) -> None:
        message = _message(self.sender, to, subject, text)
        parts = urlsplit(self.url)
        if parse_qs(parts.query).get("sendmail") == ["true"]:
            await self._sendmail(message)
            return
        try:
            await asyncio.to_thread(self._smtp, message)
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(f"SMTP server {parts.hostname} refused the mail: {exc}") from exc

    def _smtp(self, message: EmailMessage) -> None:
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        smtp: smtplib.SMTP
        if parts.scheme == "smtps":
            context = ssl.create_default_context()
            smtp = smtplib.SMTP_SSL(host, parts.port or 465, timeout=SMTP_TIMEOUT, context=context)
        else:
            smtp = smtplib.SMTP(host, parts.port or 25, timeout=SMTP_TIMEOUT)
        with smtp:
            smtp.ehlo()
            if parts.scheme == "smtp" and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)

    async def _sendmail(self, message: EmailMessage) -> None:
        proc = await asyncio.create_subprocess_exec(
            SENDMAIL, "-t", "-i", stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate(message.as_bytes())
        if proc.returncode != 0:
            raise MailError(f"sendmail exited with {proc.returncode}: {err.decode()[:300]}")


@dataclass(frozen=True)
class LogMailer:
    """No mail server: development servers log the whole mail (codes included), production
    ones only that a mail was not sent."""

    dev_mode: bool

    async def send(self, to: str, subject: str, text: str) -> None:
        if self.dev_mode:
            log.warning("mail to %s: %s\n%s", to, subject, text)
        else:
            log.warning("mail to %s (%s) not sent: PDS_EMAIL_SMTP_URL is not set", to, subject)


def mailer_for(config: PdsConfig) -> Mailer:
    if config.email_smtp_url is None:
        return LogMailer(config.dev_mode)
    sender = config.email_from_address or f"noreply@{config.hostname}"
    return SmtpMailer(config.email_smtp_url, sender)


async def send_mail(mailer: Mailer, to: str, mail: Mail) -> None:
    """Send `mail` from a request handler; a mail server failure is a 502 to the caller."""
    try:
        await mailer.send(to, mail.subject, mail.text)
    except MailError as exc:
        log.error("%s", exc)
        raise UpstreamFailure("The mail could not be sent") from None


def _code_mail(subject: str, what: str, token: str) -> Mail:
    return Mail(subject, f"{what}\n\nYour code: {token}\n\nIt expires in 15 minutes.\n")


def confirm_email(token: str) -> Mail:
    return _code_mail("Confirm your email", "Enter this code to confirm your email address.", token)


def update_email(token: str) -> Mail:
    return _code_mail("Email update requested", "Enter this code to change your email.", token)


def reset_password(identifier: str, token: str) -> Mail:
    what = f"A password reset was requested for {identifier}. Enter this code to choose a new one."
    return _code_mail("Password reset requested", what, token)


def delete_account(token: str) -> Mail:
    what = "Enter this code to delete your account. This cannot be undone."
    return _code_mail("Account deletion requested", what, token)


def plc_operation(token: str) -> Mail:
    what = "Enter this code to sign an update of your account's identity (DID)."
    return _code_mail("Identity update requested", what, token)


def test_mail(hostname: str) -> Mail:
    return Mail(
        f"Test mail from the PDS {hostname}",
        f"This is a test mail sent by `skyloft pds test-email` on {hostname}.\n"
        "If you can read it, the PDS's mail set-up works.\n",
    )
