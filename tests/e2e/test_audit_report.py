"""``limit audit export`` against a real ``limit up``: the JSON and CSV files (and the
CSV's checkpoint sidecar), a refused filter and an answer cut short that leave no file
(the latter from a loopback server that stops mid-stream), and the HTML report
opened in headless Chromium through Playwright -- rendered, with a session section, SVG
bars and the verification sentence, user text shown as text, no console or page error,
no request leaving the page -- with a screenshot to look at.

Chromium is Debian's (``scripts/ensure-tool`` installs it; ``make test`` runs that
first); Playwright drives it by path and never downloads a browser of its own.  Without
it the browser test skips, saying why.
"""

from __future__ import annotations

import csv
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.fixtures.browser import headless_chromium
from tests.fixtures.cli import Server, clean_env, run_limit, start

SESSION_NAME = "<script>alert(1)</script> sweep"
TAG = "<img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A platform with a session of two executions and a denied attempt in it."""
    running = start(tmp_path_factory.mktemp("report"))
    try:
        made = running.limit("session", "create", "--name", SESSION_NAME, "--tag", TAG)
        assert made.returncode == 0, made.stderr
        sid = json.loads(made.stdout)["id"]
        for n in range(2):
            ran = running.limit("exec", sid, "echo", "--inputs", json.dumps({"n": n}))
            assert ran.returncode == 0, ran.stderr
        key = (running.cwd / ".limit" / "admin.key").read_text().strip()
        with httpx.Client(base_url=running.url, headers={"X-API-Key": key}) as admin:
            body = {"name": "vic", "tenant": "default", "kind": "user", "roles": ["viewer"]}
            viewer = admin.post("/principals", json=body).json()
            vic = admin.post("/keys", json={"principal_id": viewer["id"]}).json()["key"]
            denied = httpx.post(
                f"{running.url}/sessions/{sid}/execute",
                json={"agent": "echo"},
                headers={"X-API-Key": vic},
            )
            assert denied.status_code == 403, denied.text
        yield running
    finally:
        running.stop()


def _session_id(server: Server) -> str:
    listed = server.limit("session", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [sid] = [s["id"] for s in json.loads(listed.stdout)["items"] if s["name"] == SESSION_NAME]
    return str(sid)


def test_json_and_csv_exports_are_written_with_their_checkpoint(
    server: Server, tmp_path: Path
) -> None:
    trail = tmp_path / "trail.json"
    done = server.limit("audit", "export", "--output", str(trail))
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(trail.read_text())
    count = len(document["entries"])
    assert count == document["checkpoint"]["tree_size"]  # the admin exports everything
    assert done.stderr.strip().endswith(
        f"exported {count:,} entries to {trail}: {document['verification']['summary']}"
    )
    assert document["verification"]["summary"].startswith(f"verified {count:,} entries")

    table = tmp_path / "trail.csv"
    done = server.limit("audit", "export", "--format", "csv", "--output", str(table))
    assert done.returncode == 0, done.stderr
    with table.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    sidecar = json.loads((tmp_path / "trail.csv.checkpoint.json").read_text())
    assert sidecar["checkpoint"]["note"].startswith("limit-graph.local/ledger\n")
    assert (sidecar["entries"], sidecar["failed"]) == (len(rows), [])
    assert [r["leaf_hash"] for r in rows] == [
        e["leaf_hash"] for e in document["entries"][: len(rows)]
    ]
    assert "every one verifies" in done.stderr

    sid = _session_id(server)
    done = server.limit("audit", "export", "--session", sid, "--action", "execution.started")
    assert done.returncode == 0, done.stderr
    assert [e["action"] for e in json.loads(done.stdout)["entries"]] == ["execution.started"] * 2


def test_a_refused_export_says_why_and_leaves_no_file(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "bad.json"
    done = server.limit("audit", "export", "--since", "yesterday", "--output", str(out))
    assert done.returncode == 1
    assert "Invalid input (422)" in done.stderr and "query.since" in done.stderr
    done = server.limit("audit", "export", "--format", "csv", "--public-key", "x")
    assert done.returncode == 1 and "--public-key is for the html report" in done.stderr
    assert list(tmp_path.iterdir()) == []


def _cut_short_server(body: bytes, *, end_chunks: bool) -> tuple[str, threading.Thread]:
    """A loopback HTTP server answering one request with a chunked 200 of ``body`` that
    either closes mid-answer or ends cleanly (``end_chunks``), as a server that failed
    while streaming would."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                head = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                )
                chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n"
                conn.sendall(head + chunk + (b"0\r\n\r\n" if end_chunks else b""))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}", thread


def test_an_export_cut_short_leaves_no_file(tmp_path: Path) -> None:
    body = b'{"format":"limit-graph.audit-export/1","entries":[\n{"index":0}\n'
    for end_chunks, said in (
        (False, "the export stopped before it was complete"),
        (True, "the export ended before it was complete"),
    ):
        url, thread = _cut_short_server(body, end_chunks=end_chunks)
        out = tmp_path / "trail.json"
        done = run_limit(
            "audit",
            "export",
            "--url",
            url,
            "--api-key",
            "k",
            "--output",
            str(out),
            cwd=tmp_path,
            env=clean_env(),
        )
        thread.join(timeout=30)
        assert done.returncode == 1, done.stderr
        assert said in done.stderr
        assert list(tmp_path.iterdir()) == []


def test_a_report_checked_against_another_key_says_it_is_not_verified(
    server: Server, tmp_path: Path
) -> None:
    from limit_graph.core import notes

    other = notes.Signer.generate("limit-graph.local/ledger").verifier_key()
    report = tmp_path / "report.html"
    done = server.limit(
        "audit", "export", "--format", "html", "--public-key", other, "--output", str(report)
    )
    assert done.returncode == 1, done.stderr
    assert "not verified: the checkpoint's note does not verify" in done.stderr
    assert "Not verified: the checkpoint&#x27;s note does not verify" in report.read_text()


def test_the_html_report_renders_in_headless_chromium(server: Server, tmp_path: Path) -> None:
    chromium = headless_chromium().executable  # installed on first use, else skipped

    report = tmp_path / "report.html"
    done = server.limit("audit", "export", "--format", "html", "--output", str(report))
    assert done.returncode == 0, done.stderr
    assert "reported " in done.stderr and ": verified " in done.stderr

    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")

            assert page.title().startswith("Audit report, checkpoint ")
            verdict = page.locator("#verification").inner_text()
            assert verdict.startswith("✓ Verified "), verdict
            assert " entries against checkpoint size " in verdict
            assert "signed by key limit-graph.local/ledger+" in verdict
            session = page.locator("section.session", has_text=SESSION_NAME)
            assert session.count() == 1
            heading = session.locator("h2").inner_text()
            assert heading == f"Session {SESSION_NAME}"  # the markup shown, as text
            assert session.locator(".tag").inner_text() == TAG
            assert session.locator("svg.plot rect.bar").count() > 0
            assert page.locator("#overview svg.plot rect.bar").count() > 0
            trail = session.locator("table").first.inner_text()
            assert "execution.succeeded" in trail and "access.denied" in trail
            policies = session.locator("table").nth(1).inner_text()
            assert "default-deny" in policies and "denied" in policies
            assert "admins-manage-tenant" in policies and "permitted" in policies
            assert page.evaluate("document.scripts.length") == 0
            assert page.locator("img").count() == 0
            box = session.locator("svg.plot").bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 80
            shot = page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert requests == [report.as_uri()]
    assert shot.startswith(b"\x89PNG") and (tmp_path / "report.png").stat().st_size > 10_000
