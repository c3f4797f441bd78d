"""Email: composing a message from templates (compose) and handing it to a mail server or, in
development without SMTP_URL, to the outbox folder shown at /dev/mail (transport)."""
