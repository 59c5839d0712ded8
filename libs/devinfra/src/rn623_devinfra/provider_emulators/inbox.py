"""The HTML inbox: every SMS, WhatsApp message and e-mail the emulators received."""

from __future__ import annotations

from html import escape

from rn623_devinfra.provider_emulators.store import EmulatorStore, ReceivedMessage

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2933; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
p.meta { color: #52606d; margin-top: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #d9e2ec; padding: .45rem .6rem; text-align: left;
         vertical-align: top; }
th { background: #f0f4f8; }
td.content pre { white-space: pre-wrap; margin: 0; font-family: inherit; }
span.badge { display: inline-block; padding: 0 .4rem; border-radius: .3rem;
             background: #e4e7eb; font-size: .85em; }
span.sms { background: #d9f0ff; } span.whatsapp { background: #d7f5dd; }
span.email { background: #fff3c4; } span.failed { background: #ffd6d6; }
code { font-size: .8em; color: #52606d; word-break: break-all; }
"""


def _content(message: ReceivedMessage) -> str:
    parts: list[str] = []
    if message.subject is not None:
        parts.append(f"<strong>{escape(message.subject)}</strong>")
    if message.template is not None:
        items = ", ".join(
            f"{escape(str(key))}={escape(str(value))}" for key, value in message.template.items()
        )
        parts.append(f"<em>template</em> {items}")
    if message.text:
        parts.append(f"<pre>{escape(message.text)}</pre>")
    elif message.html:
        parts.append("<em>(HTML only)</em>")
    if message.html and message.text:
        parts.append("<em>+ HTML part</em>")
    return "<br>".join(parts)


def _row(message: ReceivedMessage) -> str:
    status_class = "failed" if message.status == "failed" else ""
    return (
        "<tr>"
        f"<td>{escape(message.received_at.strftime('%Y-%m-%d %H:%M:%S'))} UTC</td>"
        f'<td><span class="badge {escape(message.channel)}">{escape(message.channel)}</span>'
        f"<br>{escape(message.provider)}</td>"
        f"<td>{escape(', '.join(message.to))}</td>"
        f"<td>{escape(message.sender)}</td>"
        f'<td class="content">{_content(message)}</td>'
        f'<td><span class="badge {status_class}">{escape(message.status)}</span></td>'
        f"<td><code>{escape(message.id)}</code></td>"
        "</tr>"
    )


def render_inbox(store: EmulatorStore) -> str:
    """The inbox page, newest message first, every value HTML-escaped."""
    counts = ", ".join(
        f"{escape(name)}: {count}" for name, count in sorted(store.request_counts.items())
    )
    faults = ", ".join(
        escape(f"{f.provider}/{f.channel or '*'}: {f.mode} ({f.count or '∞'})")
        for f in store.faults
    )
    rows = "".join(_row(message) for message in reversed(store.messages))
    if not rows:
        rows = '<tr><td colspan="7">Nothing received yet.</td></tr>'
    return (
        "<!doctype html>"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="5">'
        "<title>Provider emulators: inbox</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Provider emulators: inbox</h1>"
        '<p class="meta">SMS and WhatsApp messages sent to the Zenvia, Twilio and Meta '
        "emulators, and e-mails caught by the SMTP sink. Nothing leaves this machine. "
        f"Requests: {counts or 'none'}. Active faults: {faults or 'none'}. "
        'JSON: <a href="/_emulator/messages">/_emulator/messages</a>.</p>'
        "<table><thead><tr><th>Received</th><th>Channel</th><th>To</th><th>From</th>"
        "<th>Content</th><th>Status</th><th>Provider id</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></body></html>"
    )
