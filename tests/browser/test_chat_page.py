"""The built-in chat page in a real browser (Debian's Chromium driven by Playwright), against Lia
served over a real socket the way `bin/dev` serves it: sign up, chat with the offline model,
see the reply stream in with its sentiment, reload and find the conversation again."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Chromium for the browser tests: apt-get install chromium")
    pytest.skip("Chromium is not installed (apt-get install chromium); CI runs these", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lia_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Lia on the embedded defaults, in its own process, on a file database of its own."""
    port = free_port()
    database = tmp_path_factory.mktemp("browser") / "lia.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")},
        "DJANGO_SETTINGS_MODULE": "lia.settings.base",
        "DJANGO_DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{database}",
        "LLM_OFFLINE_DELAY_MS": "60",
        "LOG_LEVEL": "WARNING",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT, timeout=120)  # noqa: S603
    server = subprocess.Popen(  # noqa: S603
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/health/live", timeout=1)  # noqa: S310 - our own local server
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("Lia did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def page(lia_url: str) -> Iterator[object]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=lia_url)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.extend(_console_error(message)))
        yield page
        browser.close()
        assert errors == []


def _console_error(message) -> list[str]:
    """A console error, but the API's 401s the page handles (signed out, a wrong password: CONTRACT
    §3.4, §5.2). A missing favicon's 404 was one, found by an audit."""
    if message.type != "error":
        return []
    if "401" in message.text and "/api/v1/auth/" in message.location.get("url", ""):
        return []
    return [f"{message.text} ({message.location.get('url')})"]


def sign_up(page, email: str) -> None:
    page.goto("/chat")
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Username").fill(email.split("@")[0])
    page.get_by_label("Password").fill("Passw0rdX")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#app")).to_be_visible()


def test_sign_up_chat_and_find_the_conversation_again(page, tmp_path):
    sign_up(page, "browser@example.com")

    page.get_by_label("Sentiment method").select_option("local")
    page.get_by_placeholder("Message Lia…").fill("I love this wonderful little app!")
    page.get_by_role("button", name="Send").click()

    reply = page.locator(".msg.assistant .text").last
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=30_000)
    assert "offline mode" in reply.inner_text()
    assert page.locator(".msg.user .badge").first.inner_text().startswith("Positive")
    assert page.locator("#overall").inner_text().startswith("Overall: Positive")
    assert page.locator("#chat-error").inner_text() == ""
    page.screenshot(path=str(tmp_path / "chat.png"))

    page.reload()  # the session is the httpOnly cookie: still signed in
    page.wait_for_selector("#history li")
    assert page.locator("#history li").first.inner_text() == "I love this wonderful little app!"
    page.locator("#history li").first.click()
    page.wait_for_selector(".msg.assistant")
    assert page.locator(".msg.user .text").first.inner_text() == "I love this wonderful little app!"
    assert "offline mode" in page.locator(".msg.assistant .text").first.inner_text()
    assert page.evaluate("document.cookie") == ""  # the token is not readable by scripts


def test_stop_keeps_the_partial_reply(page):
    sign_up(page, "stopper@example.com")
    page.get_by_placeholder("Message Lia…").fill("Tell me everything, at length please.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".msg.assistant .text").last).to_contain_text("Lia")

    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    shown = page.locator(".msg.assistant .text").last.inner_text()

    status = page.locator(".msg.assistant .status").last
    for _ in range(50):  # the server stores the partial reply within moments of the abort
        page.locator("#history li").first.click()
        page.wait_for_selector(".msg.assistant .status")
        if status.inner_text() == "interrupted":
            break
        time.sleep(0.1)
    stored = page.locator(".msg.assistant .text").last.inner_text()
    assert status.inner_text() == "interrupted"
    assert stored.startswith(shown.strip()[:20])


def test_wrong_password_is_shown_in_the_form(page):
    page.goto("/chat")
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_label("Password").fill("Wrong1234")
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator("#auth-error")).to_have_text("Invalid email or password")
