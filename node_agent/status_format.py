"""Human-readable rendering of the agent's /status document."""

from __future__ import annotations

from typing import Any

__all__ = ["format_duration", "format_status"]


def format_duration(seconds: int) -> str:
    """``90061`` -> ``1d1h1m``; negative values read ``expired 5m ago``."""
    if seconds < 0:
        return f"expired {format_duration(-seconds)} ago"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n)
    return text if text else f"{secs}s"


def format_status(document: dict[str, Any]) -> str:
    lines = [
        f"identity:  {document.get('spiffe_id')}",
        f"ready:     {'yes' if document.get('ready') else 'no'} ({document.get('reason')})",
        f"CA:        {document.get('ca_address')}"
        + ("  UNREACHABLE (serving cached certificates)" if document.get("ca_unreachable") else ""),
        f"renewal:   next at {document.get('next_renewal') or '-'}",
    ]
    if document.get("last_error"):
        lines.append(f"last error: {document['last_error']}")
    if document.get("sds_socket"):
        watches = document.get("sds_watches", 0)
        lines.append(f"SDS:       {document['sds_socket']} ({watches} watches)")
    lines.append("")
    rows = [("NAME", "TYPE", "IDENTITY / ROOTS", "SERIAL", "NOT AFTER (UTC)", "EXPIRES IN")]
    for secret in document.get("secrets", []):
        if secret.get("type") == "tls_certificate":
            who = secret.get("spiffe_id") or "-"
            serial = str(secret.get("serial", "-"))
        else:
            who = f"{len(secret.get('roots', []))} root(s)"
            serial = "-"
        rows.append(
            (
                str(secret.get("name")),
                str(secret.get("type")),
                who,
                serial,
                str(secret.get("not_after")),
                format_duration(int(secret.get("expires_in_seconds", 0))),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    if len(rows) == 1:
        lines.append("(no secrets cached yet)")
    return "\n".join(lines)
