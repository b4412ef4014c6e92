"""The settings of the hostile-input runs, shared by the battery (tests/support/hostile_cases.py,
which applies them in-process) and chaos/hostile_input.py (which gives them to gunicorn).
No Django import here: the chaos script needs them before Django is set up."""

# The webhook: whose it is (mail itself goes to an SMTP sink, as through that provider's SMTP
# relay), basic auth "user:password", Mailgun's signing key.
WEBHOOK_ENV = {
    "WEBHOOK_PROVIDER": "mailgun",
    "ANYMAIL_WEBHOOK_SECRET": "hostile-hooks:webhook-secret-for-chaos-runs",
    "MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-signing-key-for-chaos-runs",
}
# ADMINS: what anyone can trigger must not flood this inbox.
ADMIN_EMAIL = "hostile-admin@example.org"
