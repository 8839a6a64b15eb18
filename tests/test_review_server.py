"""The review server over raw HTTP: who it answers, what it serves, what a POST changes.

A real server on a real local port (uvicorn), against a project built with the preview
provider; requests go out with whatever Host, token and body the test chooses.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest
from review_kit import (
    PROPS,
    SPEC,
    cli,
    exchange,
    lock,
    open_fds_on,
    post,
    raw_post,
    request,
    serving,
)

from pipeline.gallery import SCRIPT_HASH
from pipeline.review.files import MAX_FILE
from pipeline.review.server import MAX_BODY


@pytest.fixture
def built(project, run):
    """A project of two collections built with preview (hero has three variants)."""
    project.gen({"specs/chars.yaml": SPEC, "specs/props.yaml": PROPS})
    result = run("build", "--provider", "preview")
    assert result.code == 0, result.err
    return project


@pytest.fixture
def served(built):
    with serving(built.root) as server:
        yield server


def test_it_listens_on_loopback_only_and_the_page_is_escaped(served):
    """Bound to 127.0.0.1; the spec's <script> prompt is text; CSP allows only its script."""
    assert served.socket.getsockname()[0] == "127.0.0.1"
    status, headers, body = request(served, "GET", "/")
    html = body.decode()
    assert status == 200
    assert "<script>alert(1)</script>" not in html
    assert "a brave knight &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1
    assert f"script-src 'sha256-{SCRIPT_HASH}'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    token = re.search(r'<meta name="assetpipe-token" content="([^"]+)">', html)
    assert token is not None
    assert token.group(1) == served.token
    assert 'data-mode="live"' in html


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "127.0.0.1", "localhost:1", "127.0.0.2:{port}"]
)
def test_a_foreign_host_header_is_refused(served, host):
    """DNS rebinding: a page on another name that resolves here is turned away."""
    status, _, body = request(served, "GET", "/", host=host.format(port=served.port))
    assert status == 421
    assert b"unknown Host" in body
    status, _, _ = request(served, "GET", "/api/state", host=host.format(port=served.port))
    assert status == 421


def test_localhost_and_loopback_hosts_are_served(served):
    for host in (f"127.0.0.1:{served.port}", f"localhost:{served.port}"):
        assert request(served, "GET", "/api/state", host=host)[0] == 200


def test_a_post_without_the_session_token_changes_nothing(served, built):
    """CSRF: no token, a wrong token, another origin or a form body are all refused."""
    body = {"ref": "chars/hero#2"}
    json_type = {"Content-Type": "application/json"}
    cases = [
        (None, json_type, 403),
        ("not-the-token", json_type, 403),
        (served.token, {**json_type, "Origin": "http://evil.example"}, 403),
        (served.token, {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (served.token, {"Content-Type": "text/plain"}, 415),
    ]
    for token, headers, expected in cases:
        status, _, _ = request(served, "POST", "/api/pick", body, token=token, headers=headers)
        assert status == expected, (token, headers)
    assert not (built / "assetpipe.lock").exists()
    status, answer = post(served, "/api/pick", body)
    assert status == 200, answer
    assert answer["job"] == "chars/hero#2"
    assert lock(built.root)["assets"]["chars/hero"]["variant"] == 2


def test_only_images_inside_the_output_tree_are_served(served, built, tmp_path):
    """No manifest, no escapes, no links: images of the output tree only."""
    secret = tmp_path / "secret.png"
    secret.write_bytes((built / "output/chars/hero.png").read_bytes())
    (built / "output/chars/link.png").symlink_to(secret)
    status, headers, data = request(served, "GET", "/files/chars/hero.png")
    assert status == 200
    assert headers["content-type"] == "image/png"
    assert data == (built / "output/chars/hero.png").read_bytes()
    for path in (
        "/files/manifest.json",
        "/files/index.html",
        "/files/../assetpipe.yaml",
        "/files/%2e%2e/specs/chars.yaml",
        "/files/%2e%2e/%2e%2e/secret.png",
        "/files//etc/passwd.png",
        "/files/chars/link.png",
        "/files/chars/missing.png",
        "/previews/chars/hero.png",
    ):
        status, _, _ = request(served, "GET", path)
        assert status == 404, path


def test_thumbnails_on_the_page_are_served(served):
    html = request(served, "GET", "/")[2].decode()
    thumbs = re.findall(r'src="(/files/\.gallery/[0-9a-f]{64}\.webp)"', html)
    assert len(thumbs) >= 6
    for src in thumbs:
        status, headers, _ = request(served, "GET", src)
        assert (status, headers["content-type"]) == (200, "image/webp")


def test_bad_bodies_are_errors_the_page_can_show(served, built):
    token = {"Content-Type": "application/json"}
    status, _, body = request(served, "POST", "/api/pick", b"{", token=served.token, headers=token)
    assert (status, json.loads(body)["error"]) == (400, "the body is not JSON")
    status, answer = post(served, "/api/pick", {"ref": 7})
    assert (status, answer["error"]) == (400, "'ref' is missing or not a str")
    status, answer = post(served, "/api/pick", {"ref": "chars/hero#9"})
    assert status == 400
    assert answer["error"] == "chars/hero has no variant 9; it has 3 (#1 to #3)"
    status, answer = post(served, "/api/reject", {"ref": "chars/hero#2", "rejected": "yes"})
    assert status == 400
    assert not (built / "assetpipe.lock").exists()


def test_reject_and_restore_write_the_lock(served, built):
    status, answer = post(served, "/api/reject", {"ref": "chars/hero#3", "rejected": True})
    assert (status, answer["message"]) == (200, "rejected chars/hero#3")
    assert lock(built.root)["assets"]["chars/hero"] == {"rejected": [3]}
    assert post(served, "/api/pick", {"ref": "chars/hero#2"})[0] == 200
    status, answer = post(served, "/api/reject", {"ref": "chars/hero#2", "rejected": True})
    assert status == 400
    assert "is the picked variant" in answer["error"]
    assert post(served, "/api/reject", {"ref": "chars/hero#3", "rejected": False})[0] == 200
    assert "rejected" not in lock(built.root)["assets"]["chars/hero"]


def test_a_run_needs_the_quote_that_was_shown(served, built):
    """Nothing runs on a stale or made-up quote: the price must have been seen."""
    status, quote = post(served, "/api/quote", {"action": "reroll", "asset": "chars/hero"})
    assert status == 200, quote
    assert quote["jobs"] == ["chars/hero#4"]
    assert quote["cost_usd"] == 0.0
    assert quote["list_usd"] > 0
    assert "free on preview" in quote["summary"]
    body = {"action": "reroll", "asset": "chars/hero", "quote": "0" * 64}
    status, answer = post(served, "/api/run", body)
    assert status == 409
    assert "changed since its cost was shown" in answer["error"]
    assert not (built / "assetpipe.lock").exists()
    # The spec moves between the quote and the confirm: the old quote no longer holds.
    spec = built / "specs/chars.yaml"
    spec.write_text(spec.read_text().replace("256x256", "512x512", 1))
    status, answer = post(served, "/api/run", {**body, "quote": quote["quote"]})
    assert status == 409
    assert not (built / "assetpipe.lock").exists()
    status, answer = post(served, "/api/quote", {"action": "fly", "asset": "chars/hero"})
    assert (status, answer["error"]) == (400, "unknown action 'fly'; use one of reroll, build")


def test_the_page_shows_watch_previews_of_a_changed_spec(served, built):
    """After a save, the preview of the new request sits beside the stale built image."""
    from pipeline import api
    from pipeline.review.watch import render_once

    spec = built / "specs/props.yaml"
    spec.write_text(spec.read_text().replace("on a stone", "in a lake"))
    event, _ = render_once(api.Request(project=built.root))
    assert event.kind == "rendered", event
    html = request(served, "GET", "/")[2].decode()
    sword = html[html.index('data-name="props/sword"') :]
    sword = sword[: sword.index("</section>")]
    assert 'class="card stale"' in sword  # the built image: an older spec
    assert 'class="card preview"' in sword
    assert "a sword in a lake" in sword
    preview = re.search(r'src="(/previews/\.gallery/[0-9a-f]{64}\.webp)"', sword)
    assert preview is not None
    assert request(served, "GET", preview.group(1))[0] == 200
    assert 'class="build"' in sword  # a real render is one confirmed click away


def test_help_does_not_import_the_web_stack():
    """`assetpipe --help` (and so every other command) loads no Starlette or uvicorn."""
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "review" in done.stdout
    assert "watch" in done.stdout


def test_changed_since_approval_is_marked_on_the_page(served, built):
    """A pick whose spec moved on: the group says so and needs review again."""
    assert post(served, "/api/pick", {"ref": "chars/hero#2"})[0] == 200
    html = request(served, "GET", "/")[2].decode()
    assert 'data-name="chars/hero" data-tags="people" data-needs-review="0"' in html
    spec = built / "specs/chars.yaml"
    spec.write_text(spec.read_text().replace("a brave knight", "a tired knight"))
    html = request(served, "GET", "/")[2].decode()
    group = html[html.index('data-name="chars/hero"') :]
    group = group[: group.index("</h3>")]
    assert 'data-needs-review="1"' in group
    assert 'data-changed="1"' in group
    assert '<span class="badge changed">changed since approval</span>' in group
    assert "changed since approval: the spec now asks for another image" in html


def test_a_fifo_or_a_link_to_a_device_is_refused_and_the_server_keeps_serving(served, built):
    """A FIFO named like an image is opened without waiting for a writer, found not to be
    a regular file on its descriptor, closed, and refused (404); so is a link to a device.
    Nothing is left open on the FIFO and the next requests are answered as usual."""
    fifo = built / "output/chars/pipe.png"
    os.mkfifo(fifo)
    (built / "output/chars/zero.webp").symlink_to("/dev/zero")
    for path in ("/files/chars/pipe.png", "/files/chars/pipe.png", "/files/chars/zero.webp"):
        status, _, body = request(served, "GET", path)
        assert (status, body) == (404, b"not an image of the output tree"), path
    assert open_fds_on(fifo) == []
    status, _, data = request(served, "GET", "/files/chars/hero.png")
    assert (status, data) == (200, (built / "output/chars/hero.png").read_bytes())
    assert request(served, "GET", "/api/state")[0] == 200


def test_a_file_over_the_size_cap_is_refused_and_one_at_the_cap_is_streamed(served, built):
    """A sparse 3 GiB file (and one a byte over the cap) is refused with a 404 that says
    why, before any of it is read; a file of exactly the cap is sent whole, with its
    length declared, and a HEAD of it sends the headers only."""
    refusal = b"larger than the 64 MiB this page serves; open it from the output folder"
    for name, size in (("huge.png", 3 * 2**30), ("over.png", MAX_FILE + 1)):
        with (built / "output/chars" / name).open("wb") as handle:
            handle.truncate(size)
        assert request(served, "GET", f"/files/chars/{name}")[::2] == (404, refusal), name
    with (built / "output/chars/edge.png").open("wb") as handle:
        handle.truncate(MAX_FILE)
    status, headers, data = request(served, "HEAD", "/files/chars/edge.png")
    assert (status, headers["content-length"], data) == (200, str(MAX_FILE), b"")
    status, headers, data = request(served, "GET", "/files/chars/edge.png")
    assert (status, headers["content-type"], headers["content-length"]) == (
        200,
        "image/png",
        str(MAX_FILE),
    )
    assert len(data) == MAX_FILE
    assert data.count(0) == MAX_FILE
    assert request(served, "GET", "/api/state")[0] == 200


def test_a_body_declared_over_the_cap_is_refused_before_it_is_read(served, built):
    """A POST whose Content-Length is over 16 KiB (300 MB, or one byte over) gets a 413
    and a closed connection although not one byte of its body was sent: the server never
    waited for it. A body of exactly the cap is read and acted on."""
    for declared in (300 * 1000 * 1000, MAX_BODY + 1):
        head = raw_post(served, "/api/pick", f"Content-Length: {declared}")
        status, headers, body = exchange(served, head)
        assert status == 413, declared
        assert headers["connection"] == "close"
        assert json.loads(body) == {"error": "request body too large (the limit is 16 KiB)"}
    assert not (built / "assetpipe.lock").exists()
    exact = json.dumps({"ref": "chars/hero#2"}).encode().ljust(MAX_BODY, b" ")
    status, answer = post(served, "/api/pick", exact)
    assert (status, answer["job"]) == (200, "chars/hero#2")


def test_a_chunked_body_is_cut_off_at_the_cap(served, built):
    """A chunked body that goes past 16 KiB is refused (413, connection closed) as soon
    as the byte past the cap arrives, in the middle of a chunk declared as 1 MiB and with
    no end of body ever sent; a chunked body of exactly the cap is read and acted on."""
    head = raw_post(served, "/api/pick", "Transfer-Encoding: chunked")
    status, headers, body = exchange(served, head + b"100000\r\n" + b" " * (MAX_BODY + 1))
    assert (status, headers["connection"]) == (413, "close")
    assert json.loads(body) == {"error": "request body too large (the limit is 16 KiB)"}
    assert not (built / "assetpipe.lock").exists()
    exact = json.dumps({"ref": "chars/hero#2"}).encode().ljust(MAX_BODY, b" ")
    chunks = b"".join(b"1000\r\n" + exact[i : i + 4096] + b"\r\n" for i in range(0, MAX_BODY, 4096))
    head = raw_post(served, "/api/pick", "Transfer-Encoding: chunked\r\nConnection: close")
    status, _, body = exchange(served, head + chunks + b"0\r\n\r\n")
    assert (status, json.loads(body)["job"]) == (200, "chars/hero#2")
    assert lock(built.root)["assets"]["chars/hero"]["variant"] == 2


def test_review_on_a_port_in_use_exits_2_with_one_line_saying_what_to_do(built):
    """`assetpipe review --port N` with N held by another socket prints one error line
    naming the port and the way out (another port, or --port 0) and exits 2: no
    traceback, nothing on stdout."""
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        done = cli(built.root, "review", "--port", str(port))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"error: port {port} on 127.0.0.1 is already in use by another program; "
        "choose another with --port N, or --port 0 to take a free one\n"
    )
    assert "Traceback" not in done.stderr
