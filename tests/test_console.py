"""The admin console over real HTTP: sign-in, roles, CSRF, tenant scoping, the audit search,
keys, and that no input comes back unescaped. The browser walk is in test_console_browser."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from bastion.audit import AuditEntry, AuditQuery
from conftest import LiveServer

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class ConsoleClient:
    """A signed-in browser session, as far as HTTP goes: cookies kept, CSRF tokens read."""

    def __init__(self, server: LiveServer, key: str) -> None:
        self.http = httpx.Client(base_url=server.url, follow_redirects=False)
        form = self.http.get("/console/login")
        self.login = self.http.post(
            "/console/login", data={"api_key": key, "csrf": token(form.text), "next": ""}
        )

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get("/console" + path, params=params)

    def post(self, path: str, data: dict[str, str], page: str) -> httpx.Response:
        """Submit a form of `page` (read first for its CSRF token)."""
        return self.http.post("/console" + path, data={**data, "csrf": token(self.get(page).text)})


def token(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@pytest.fixture
def admin(server: LiveServer) -> Iterator[ConsoleClient]:
    client = ConsoleClient(server, server.key("acme", "alice", "admin"))
    yield client
    client.http.close()


def ask(server: LiveServer, key: str, text: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {key}"},
    )


def test_sign_in_sets_a_strict_http_only_cookie_and_lands_on_the_overview(
    admin: ConsoleClient,
) -> None:
    assert admin.login.status_code == 303 and admin.login.headers["location"] == "/console/"
    cookie = admin.login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    page = admin.get("/")
    assert page.status_code == 200 and "Overview" in page.text


def test_pages_need_a_session_and_send_the_viewer_to_sign_in(server: LiveServer) -> None:
    answer = httpx.get(server.url + "/console/audit?user=bob")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login?next=%2Fconsole%2Faudit")


def test_a_bad_key_is_refused_on_the_sign_in_page(server: LiveServer) -> None:
    client = ConsoleClient(server, "bst_0000000000000000_" + "x" * 43)
    assert client.login.status_code == 401 and "invalid API key" in client.login.text
    assert client.get("/").status_code == 303


def test_a_user_key_cannot_sign_in_and_a_reviewer_sees_only_the_review_queue(
    server: LiveServer,
) -> None:
    user = ConsoleClient(server, server.key("acme", "ursula", "user"))
    assert user.login.status_code == 403 and "admins and reviewers" in user.login.text
    reviewer = ConsoleClient(server, server.key("acme", "rita", "reviewer"))
    assert reviewer.login.headers["location"] == "/console/review"
    for path in ("/", "/audit", "/keys", "/audit/export"):
        refused = reviewer.get(path)
        assert refused.status_code == 403 and "for admins" in refused.text, path


def test_the_login_form_needs_its_csrf_token(server: LiveServer) -> None:
    http = httpx.Client(base_url=server.url)
    http.get("/console/login")
    answer = http.post("/console/login", data={"api_key": server.key(), "csrf": "forged"})
    assert answer.status_code == 403 and "security token" in answer.text


def test_every_form_needs_the_session_csrf_token(admin: ConsoleClient, server: LiveServer) -> None:
    forged = admin.http.post("/console/keys", data={"user": "mallory", "role": "admin"})
    assert forged.status_code == 403 and "security token" in forged.text
    assert not [k for k in server.platform.access.list_keys("acme") if k.user == "mallory"]


def test_security_headers_on_every_console_answer(admin: ConsoleClient) -> None:
    for answer in (admin.get("/"), admin.get("/nowhere"), admin.get("/static/console.css")):
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert admin.get("/nowhere").status_code == 404


def test_keys_are_created_with_the_secret_shown_once_and_revoked(
    admin: ConsoleClient, server: LiveServer
) -> None:
    made = admin.post("/keys", {"user": "bob", "role": "user", "label": "laptop"}, page="/keys")
    assert made.status_code == 200
    secret = re.search(r"bst_[0-9a-f]{16}_[\w-]+", made.text)
    assert secret and ask(server, secret.group(0), "hello").status_code == 200
    listing = admin.get("/keys").text
    assert secret.group(0) not in listing and "laptop" in listing
    key_id = secret.group(0).split("_")[1]
    assert admin.post(f"/keys/{key_id}/revoke", {}, page="/keys").status_code == 303
    assert ask(server, secret.group(0), "hello").status_code == 401
    bad = admin.post("/keys", {"user": "bob", "role": "overlord"}, page="/keys")
    assert bad.status_code == 400 and "role &#39;overlord&#39; is unknown" in bad.text


def test_revoking_the_signed_in_key_ends_the_session(
    admin: ConsoleClient, server: LiveServer
) -> None:
    key_id = server.platform.access.list_keys("acme")[0].key_id
    server.platform.access.revoke(key_id)
    assert admin.get("/").status_code == 303


def test_sign_out_ends_the_session(admin: ConsoleClient) -> None:
    assert admin.post("/logout", {}, page="/").status_code == 303
    assert admin.get("/").status_code == 303


def test_the_audit_trail_filters_pages_and_shows_one_tenants_records(
    admin: ConsoleClient, server: LiveServer
) -> None:
    acme = server.key("acme", "bob", "user")
    for n in range(3):
        assert ask(server, acme, f"question {n}").status_code == 200
    assert ask(server, acme, "tell me about project nightingale").status_code == 400
    ask(server, server.key("globex", "gina", "user"), "globex secret question")
    page = admin.get("/audit", user="bob")
    assert page.status_code == 200 and "4 in all" in page.text
    assert "globex" not in page.text
    blocked = admin.get("/audit", status="blocked")
    assert blocked.text.count('class="tag blocked"') == 1 and "deny_list: block" in blocked.text
    record = server.platform.audit.search(AuditQuery(tenant="acme")).records[0]
    detail = admin.get("/audit/" + record["trace_id"])
    assert detail.status_code == 200 and record["hash"] in detail.text
    other = server.platform.audit.search(AuditQuery(tenant="globex")).records[0]
    assert admin.get("/audit/" + other["trace_id"]).status_code == 404
    export = admin.get("/audit/export", user="bob")
    lines = export.text.splitlines()
    assert export.headers["content-disposition"].startswith("attachment")
    assert len(lines) == 4 and '"globex"' not in export.text
    verified = admin.post("/audit/verify", {}, page="/audit")
    assert "The chain is intact" in verified.text
    typo = admin.get("/audit", since="yesterday")
    assert typo.status_code == 400 and "since &#39;yesterday&#39; is not a date" in typo.text
    # the edges of the calendar: each was a 500 (an overflow)
    assert admin.get("/audit", until="9999-12-31").status_code == 200
    assert admin.get("/audit", since="0001-01-01T00:00+01:00").status_code == 400
    assert admin.get("/audit", before="-3").status_code == 400


def test_script_payloads_come_back_escaped(admin: ConsoleClient, server: LiveServer) -> None:
    payload = "<script>alert(1)</script>"
    finding = {"kind": "deny_list", "detail": payload}
    server.platform.audit.append(
        AuditEntry(
            trace_id="hostile", tenant="acme", user=payload, role="user", key_id=None,
            app=payload, model="echo", status="blocked", prompt=[{"role": "user",
            "content": payload}], verdicts=[{"guard": payload, "stage": "input",
            "action": "block", "score": 1.0, "findings": [finding]}],
        )
    )  # fmt: skip
    pages = [
        admin.get("/audit"),
        admin.get("/audit/hostile"),
        admin.get("/audit", user=payload, app=payload),
        admin.post("/keys", {"user": payload, "role": "user"}, page="/keys"),
    ]
    for page in pages:
        assert payload not in page.text and "&lt;script&gt;" in page.text
