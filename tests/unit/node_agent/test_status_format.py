from __future__ import annotations

import pytest

from node_agent.status_format import format_duration, format_status


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (90061, "1d1h1m"), (3600, "1h"), (-300, "expired 5m ago")],
    ids=["zero", "seconds", "days-hours-minutes", "one-hour", "expired"],
)
def test_duration_reads_like_a_human_wrote_it(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_status_table_lists_identities_serials_and_expiry() -> None:
    text = format_status(
        {
            "spiffe_id": "spiffe://example.org/ns/a/sa/b",
            "ready": False,
            "reason": "no certificate yet",
            "ca_address": "127.0.0.1:15012",
            "ca_unreachable": True,
            "last_error": "ca_unreachable: CA at 127.0.0.1:15012 is unreachable",
            "next_renewal": "2026-06-01T12:00:05+00:00",
            "sds_socket": "/run/citadel-agent/sds.sock",
            "sds_watches": 2,
            "secrets": [
                {
                    "name": "default",
                    "type": "tls_certificate",
                    "spiffe_id": "spiffe://example.org/ns/a/sa/b",
                    "serial": "abc123",
                    "not_after": "2026-06-01T13:00:00+00:00",
                    "expires_in_seconds": 3600,
                },
                {
                    "name": "ROOTCA",
                    "type": "trust_bundle",
                    "roots": ["f" * 64],
                    "not_after": "2036-06-01T12:00:00+00:00",
                    "expires_in_seconds": 315360000,
                },
            ],
        }
    )
    assert "ready:     no (no certificate yet)" in text
    assert "UNREACHABLE (serving cached certificates)" in text
    assert "default  tls_certificate  spiffe://example.org/ns/a/sa/b  abc123" in text
    assert "1 root(s)" in text
    assert "1h" in text
    assert "(2 watches)" in text


def test_status_with_nothing_cached_says_so() -> None:
    assert "(no secrets cached yet)" in format_status({"secrets": []})
