"""The web page end to end: a real `bounty serve` process, driven through Debian's chromium by Playwright.

One bounty for a 7 is created with the CLI on the embedded dev chain (a block every second), then a
person's path is replayed: see the bounty, draw a 7 on the canvas, Check it, Submit it and watch the
receipt reach "confirmed"; draw something else and see Submit refuse it with no money moved; upload a
photo instead of drawing. Playwright's own browser download is never used (see FACTS.md).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bsv
import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from marketplace.images import to_mnist
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import logits
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, draw, press
from tests.support.processes import BIN, create_bounty_cli, server_env, start_server, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

TXID = re.compile(r"[0-9a-f]{64}")
VERDICT = re.compile(r"The network reads a (\d) \(margin (-?\d+)\)")

# Strokes in canvas pixels (the pad is 280x280). Candidates are tried in order; the first one the model
# reads the wanted way is used, so a retrained model moves the test to another shape rather than breaking it.
SEVENS = [
    [[(70, 60), (210, 60), (120, 230)]],  # a bar along the top, then a diagonal down to the left
    [[(60, 50), (220, 50), (130, 240)]],
    [[(80, 60), (200, 60), (190, 90), (120, 230)]],
]
NOT_SEVENS = [
    [[(140, 40), (140, 240)]],  # a 1: one vertical stroke
    [[(140, 40), (200, 80), (210, 160), (180, 230), (140, 245), (90, 220), (70, 150), (85, 80), (140, 40)]],  # a 0
]


@dataclass
class Server:
    url: str
    bounty_id: int
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`bounty serve` on a free port of 127.0.0.1, its state in a fresh BOUNTY_HOME holding one funded bounty."""
    home = tmp_path_factory.mktemp("bounty-home")
    # Only this test's settings: no BOUNTY_* variable of the caller (a database URL, a Redis URL, a key) leaks in,
    # and the working directory is the fresh home so no stray .env file is read either.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNTY_")}
    env.update(BOUNTY_HOME=str(home), BOUNTY_BLOCK_INTERVAL="1",
               BOUNTY_NOVELTY_CACHE_DIR=os.environ["BOUNTY_NOVELTY_CACHE_DIR"])  # the tests' one built MNIST index
    bounty_id = int(create_bounty_cli(env, [7], 500, 100_000, cwd=home, vetted=True)["id"])
    process, url = start_server(env, home / "server.log", cwd=home)  # uvicorn stops cleanly on SIGTERM
    try:
        yield Server(url, bounty_id, process.log)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (`make test` does it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """The page, loaded, its bounty list filled; fails the test on any uncaught script error."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        expect(page.locator("#bounty option")).to_have_count(1)
        yield page
        assert not errors, f"script errors on the page: {errors}"
    finally:
        context.close()


# --- helpers ----------------------------------------------------------------------------------------------------


def check(page: Page) -> tuple[int, int, str]:
    """Click Check: the label and margin the page shows, and the verdict's class (ok or bad)."""
    text = press(page, "#check")
    found = VERDICT.match(text)
    assert found, f"unexpected verdict {text!r}"
    return int(found[1]), int(found[2]), page.locator("#verdict").get_attribute("class") or ""


def canvas_png(page: Page) -> bytes:
    data_url = page.locator("#pad").evaluate("pad => pad.toDataURL('image/png')")
    return base64.b64decode(data_url.split(",", 1)[1])


def dl(page: Page, selector: str) -> dict[str, str]:
    """A <dl> of the page as {term: value}."""
    pairs = page.locator(selector).evaluate(
        "dl => [...dl.querySelectorAll('dt')].map(dt => [dt.textContent, dt.nextElementSibling.textContent])")
    return dict(pairs)


def first_drawing(page: Page, candidates: list[Any], wanted: bool) -> tuple[int, int, str]:
    """Draw the first candidate the model reads as a 7 (`wanted`) or as anything else; its Check verdict."""
    seen = []
    for strokes in candidates:
        draw(page, strokes)
        label, margin, kind = check(page)
        if (label == 7) == wanted:
            return label, margin, kind
        seen.append(label)
    pytest.fail(f"no candidate drawing was read {'as' if wanted else 'as anything but'} a 7 (read: {seen})")


# --- tests ------------------------------------------------------------------------------------------------------


def test_draw_check_submit_and_refuse(page: Page, server: Server, api: httpx.Client, tmp_path: Path) -> None:
    bounty = api.get(f"/bounties/{server.bounty_id}").json()
    expect(page.locator("#bounty option")).to_have_text(f"#{server.bounty_id}: 500 sats for a 7 (active)")
    expect(page.locator("#live")).to_contain_text(bounty["contract_txid"])
    live = dl(page, "#live")  # what an image costs and how many the balance pays for, as the API says
    assert live["cost per image"] == (f"up to {bounty['cost_sats_per_image']} sats (500 payout + up to "
                                      f"{bounty['fee_sats_per_image']} fee)")
    assert live["images left"] == str(bounty["images_left"]) and bounty["images_left"] >= 1
    assert live["fees spent"] == f"{bounty['fees_spent_sats']} sats"  # a pool's deploy: its prizes' creation
    assert live["shape"] == (f"pool: {bounty['live_prizes']} prizes live (at most {bounty['prizes']}), "
                             f"{bounty['reserve_sats']} sats in reserve")
    contract = page.locator("#live dt:text-is('contract') + dd a")
    assert contract.get_attribute("href") == bounty["contract_txid_url"] == f"/chain/tx/{bounty['contract_txid']}"
    assert press(page, "#check") == "Draw a digit first."  # nothing drawn yet: no request

    # A 7: Check says this bounty would pay, and the page shows exactly what /classify answers for the canvas.
    label, margin, kind = first_drawing(page, SEVENS, wanted=True)
    assert (label, kind) == (7, "ok")
    expect(page.locator("#verdict")).to_have_text(f"The network reads a 7 (margin {margin}): "
                                                  "this bounty would pay for it.")
    direct = api.post("/classify", files={"image": ("digit.png", canvas_png(page), "image/png")},
                      data={"bounty_id": str(server.bounty_id)}).json()
    assert (direct["label"], direct["margin"], direct["accepted"]) == (7, margin, True)

    # Submit it: a transaction at once, then the receipt follows it to "confirmed" (a block every second).
    address = str(bsv.PrivateKey(network=bsv.Network.TESTNET).address())
    page.fill("#address", address)
    accepted = press(page, "#submit")
    found = re.fullmatch(r"Accepted for payment: transaction ([0-9a-f]{64})", accepted)
    assert found, accepted
    txid = found[1]
    expect(page.locator("#receipt")).to_contain_text("confirmed", timeout=30_000)
    receipt = dl(page, "#receipt")
    assert receipt["status"] == "confirmed" and receipt["txid"] == txid and TXID.fullmatch(receipt["txid"])
    paid_words = page.locator("#outcome")  # what happened, in words, with the payment's page
    expect(paid_words).to_have_text(re.compile(rf"Paid: 500 sats to {address}, confirmed in block \d+\. "
                                               "See the transaction"))
    assert paid_words.locator("a").get_attribute("href") == f"/chain/tx/{txid}"
    assert (receipt["digit"], receipt["margin"], receipt["reason"]) == ("7", str(margin), "–")
    paid = api.get(f"/submissions/{receipt['submission']}").json()
    assert (paid["status"], paid["txid"], paid["recipient_address"]) == ("confirmed", txid, address)
    assert paid["payout_sats"] == 500 and paid["confirmations"] >= 1
    expect(page.locator("#live dt:text-is('accepted') + dd")).to_have_text("1", timeout=10_000)  # live numbers
    after_payment = api.get(f"/bounties/{server.bounty_id}").json()
    assert after_payment["accepted_count"] == 1 and after_payment["paid_sats"] == 500
    spent = after_payment["fees_spent_sats"] - bounty["fees_spent_sats"]  # the claim's (and any refill's)
    assert spent == bounty["remaining_sats"] - after_payment["remaining_sats"] - 500
    expect(page.locator("#live dt:text-is('fees spent') + dd")).to_have_text(
        f"{after_payment['fees_spent_sats']} sats", timeout=10_000)
    link = page.locator("#receipt dt:text-is('txid') + dd a")  # the payment's own page on the dev chain
    href = link.get_attribute("href")
    assert href == paid["txid_url"] == f"/chain/tx/{txid}"
    assert page.context.browser is not None
    elsewhere = page.context.browser.new_context()  # a tab of this context would take the pad's pointer events
    try:
        tx_page = elsewhere.new_page()
        tx_page.goto(server.url + href)
        expect(tx_page.locator("#txid")).to_have_text(txid)
        assert int(tx_page.locator("#confirmations").text_content() or "0") >= 1
        expect(tx_page.locator("#outputs")).to_contain_text(address)
    finally:
        elsewhere.close()

    # Not a 7: Check already says it would not pay, and Submit is refused before any money moves.
    label, margin, kind = first_drawing(page, NOT_SEVENS, wanted=False)
    assert kind == "bad"
    expect(page.locator("#verdict")).to_have_text(f"The network reads a {label} (margin {margin}): "
                                                  "this bounty would not pay for it.")
    refused = press(page, "#submit")
    assert refused == f"The classifier reads a {label} (margin {margin}), which is not this bounty's 7"
    expect(page.locator("#outcome")).to_have_text("Refused before any payment: nothing was paid.")
    assert page.locator("#verdict").get_attribute("class") == "bad"
    assert dl(page, "#receipt") == {}  # the earlier payment's receipt is not shown as this one's
    time.sleep(1.5)  # a block or so: had anything been paid, it would show by now
    unchanged = api.get(f"/bounties/{server.bounty_id}").json()
    for key in ("accepted_count", "paid_sats", "remaining_sats", "current_outpoint"):
        assert unchanged[key] == after_payment[key], key

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    with Image.open(shot) as image:
        assert image.width >= 800 and image.height >= 600
        gray = np.asarray(image.convert("L"))
    assert (gray > 240).mean() > 0.5 and (gray < 40).sum() > 2_000  # white page, dark text and the drawn ink


def test_uploaded_photo_is_checked(page: Page, server: Server, api: httpx.Client, mnist: Mnist,
                                   tmp_path: Path) -> None:
    # A real handwritten 7 (MNIST's first test image), as a scan: dark ink on white paper, ten times the size.
    assert mnist.y_test[0] == 7
    scan = Image.fromarray(255 - mnist.x_test[0]).resize((280, 280), Image.Resampling.BICUBIC)
    photo = tmp_path / "seven.png"
    scan.save(photo)
    expected = api.post("/classify", files={"image": ("seven.png", photo.read_bytes(), "image/png")},
                        data={"bounty_id": str(server.bounty_id)}).json()
    assert expected["label"] == 7 and expected["accepted"] is True

    page.set_input_files("#photo", photo)  # nothing drawn: Check sends the file
    label, margin, kind = check(page)
    assert (label, margin, kind) == (7, expected["margin"], "ok")
    expect(page.locator("#verdict")).to_contain_text("this bounty would pay for it")

    page.click("#clear")  # Clear drops the file too: back to "draw first"
    assert page.locator("#photo").evaluate("input => input.files.length") == 0
    assert press(page, "#check") == "Draw a digit first."



# --- the contributor's view: the network, the offer, outcomes in words, the history, errors for people ---------

# Sevens of other shapes than SEVENS: a vetted bounty pays for an image (or one very like it) only once
OTHER_SEVENS = [
    [[(60, 70), (220, 60), (90, 240)], [(100, 150), (190, 150)]],  # a slanted 7 with a crossbar
    [[(90, 50), (200, 70), (150, 245)]],  # a steep 7, its bar tilted
    [[(60, 90), (200, 60), (170, 120), (110, 240)]],
]
NAMED_DEV_CHAIN = "Paid on the dev chain: test coins on the operator's machine, worth nothing"


def test_the_page_names_the_network_and_what_the_bounty_pays(page: Page, server: Server, api: httpx.Client) -> None:
    expect(page.locator("#network")).to_have_text(NAMED_DEV_CHAIN)
    assert api.get("/network").json()["name"] == "dev chain"
    bounty = api.get(f"/bounties/{server.bounty_id}").json()
    left = bounty["images_left"]
    expect(page.locator("#offer")).to_have_text(
        f"Pays 500 sats for each accepted 7. Its balance pays for {left} more image{'' if left == 1 else 's'} "
        f"(each costs it up to {bounty['cost_sats_per_image']} sats with the transaction fee).")


def test_mistakes_are_answered_in_words(page: Page) -> None:
    first_drawing(page, SEVENS, wanted=True)
    assert press(page, "#submit") == "Enter your payout address: the Bitcoin SV address the bounty pays to"
    page.fill("#address", "my-wallet")
    assert press(page, "#submit") == ("'my-wallet' is not a Bitcoin SV address (a payout address starts with m or n "
                                      "on testnet, with 1 on mainnet)")
    page.fill("#address", "")
    page.click("#show-history")
    expect(page.locator("#history-note")).to_have_text("Enter your payout address above to see your submissions.")
    page.fill("#address", "my-wallet")
    page.click("#show-history")
    expect(page.locator("#history-note")).to_have_text(
        "'my-wallet' is not a Bitcoin SV address (a payout address starts with m or n on testnet, with 1 on mainnet)")
    assert page.locator("#history").is_hidden()


def history_rows(page: Page) -> list[list[str]]:
    return page.locator("#history tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def test_a_paid_and_a_refused_submission_in_words_and_in_the_history(page: Page, server: Server,
                                                                      api: httpx.Client) -> None:
    address = str(bsv.PrivateKey(network=bsv.Network.TESTNET).address())
    page.fill("#address", address)
    page.click("#show-history")
    expect(page.locator("#history-note")).to_have_text("No submissions from this address yet.")

    first_drawing(page, OTHER_SEVENS, wanted=True)
    assert press(page, "#submit").startswith("Accepted for payment: transaction ")
    expect(page.locator("#outcome")).to_contain_text("Paid: 500 sats", timeout=30_000)

    # The same drawing again: vetting refuses it (the payee sent it already), and the receipt says so in words
    refused = press(page, "#submit")
    assert re.fullmatch(r"Submission \d+ was refused: you already submitted this image or one very like it", refused)
    expect(page.locator("#outcome")).to_have_text(
        "Refused: you already submitted this image or one very like it. Nothing was paid.")

    # The history, refreshed once the receipt is final: both, newest first, as the API lists them
    expect(page.locator("#history tbody tr")).to_have_count(2)
    mine = api.get("/submissions", params={"address": address}).json()
    assert mine["total"] == 2
    newest, oldest = mine["submissions"]
    assert (newest["status"], newest["reason"], oldest["status"]) == ("rejected", "duplicate", "confirmed")
    rows = history_rows(page)
    assert [row[0] for row in rows] == [str(newest["id"]), str(oldest["id"])]
    assert rows[0][3:] == ["refused: you already submitted this image or one very like it", "–", "–"]
    assert rows[1][3:] == ["paid", "500 sats", "view"]
    link = page.locator("#history tbody tr").nth(1).locator("a")
    assert link.get_attribute("href") == oldest["txid_url"] == f"/chain/tx/{oldest['txid']}"
    expect(page.locator("#history-note")).to_have_text("2 submissions; showing 1 to 2.")


def appealable_scan(mnist: Mnist, shipped: ModelArtifact, gap: int, tmp_path: Path) -> Path:
    """A photo of a handwritten digit the classifier reads as something else, with 7 a close second (within the
    bounty's appeal gap), as the service reads the upload."""
    x = mnist.x_test.reshape(-1, 784)
    z = logits(shipped.integer, x)
    ranked = np.argsort(-z, axis=1, kind="stable")
    for index in np.flatnonzero((ranked[:, 0] != 7) & (ranked[:, 1] == 7)):
        scan = Image.fromarray(255 - mnist.x_test[index]).resize((280, 280), Image.Resampling.BICUBIC)
        photo = tmp_path / f"scan-{index}.png"
        scan.save(photo)
        read = logits(shipped.integer, to_mnist(photo.read_bytes()).reshape(1, 784))[0]
        first, second = sorted(range(10), key=lambda c: (-int(read[c]), c))[:2]
        if first != 7 and second == 7 and read[first] - read[7] <= gap:
            return photo
    pytest.fail("no MNIST test image is refused with 7 a close second")


def test_a_refusal_offers_the_appeal_and_says_what_became_of_it(page: Page, server: Server, api: httpx.Client,
                                                               mnist: Mnist, shipped: ModelArtifact,
                                                               tmp_path: Path) -> None:
    bounty = api.get(f"/bounties/{server.bounty_id}").json()
    photo = appealable_scan(mnist, shipped, bounty["appeal_gap"], tmp_path)
    page.fill("#address", str(bsv.PrivateKey(network=bsv.Network.TESTNET).address()))
    page.set_input_files("#photo", photo)
    assert page.locator("#appeal").is_hidden() and page.locator("#appeal-why").is_hidden()
    refused = press(page, "#submit")
    assert re.fullmatch(r"The classifier reads a \d \(margin \d+\), which is not this bounty's 7; "
                        r"you may appeal, claiming a 7", refused), refused
    expect(page.locator("#appeal")).to_be_visible()
    expect(page.locator("#appeal-why")).to_contain_text("If you did draw the bounty's digit, appeal")

    # The appeal is vetted, and refused: the scan is one of MNIST's own (known_image), and a digit the classifier
    # misread is one the judge may not read as a 7 either (judge_disagrees). The page says why, in words
    appealed = press(page, "#appeal")
    found = re.fullmatch(r"Submission (\d+) was refused: (.+)", appealed)
    assert found, appealed
    receipt = api.get(f"/submissions/{found[1]}").json()
    assert (receipt["status"], receipt["appeal"]) == ("rejected", True)
    assert receipt["reason"] in ("known_image", "judge_disagrees"), receipt
    assert found[2] == receipt["reason_text"]
    expect(page.locator("#outcome")).to_have_text(f"Refused: {receipt['reason_text']}. Nothing was paid.")


# --- the operator's pages --------------------------------------------------------------------------------------

OPERATOR_TOKEN = "browser-op-token-6d1f0b93e27a"


@pytest.fixture(scope="module")
def operator_server(tmp_path_factory: pytest.TempPathFactory,
                    sevens: np.ndarray) -> Iterator[tuple[Server, dict[str, str]]]:
    """A second `bounty serve` with the operator pages on (BOUNTY_ADMIN_TOKEN), one open bounty for a 7 and two
    MNIST sevens paid, confirmed and kept by the embedded workers for review; and its environment, for the CLI."""
    home = tmp_path_factory.mktemp("operator-home")
    env = server_env(home, BOUNTY_ADMIN_TOKEN=OPERATOR_TOKEN,
                     BOUNTY_NOVELTY_CACHE_DIR=os.environ["BOUNTY_NOVELTY_CACHE_DIR"])
    bounty_id = int(create_bounty_cli(env, [7], 500, 100_000, cwd=home)["id"])
    process, url = start_server(env, home / "server.log", cwd=home)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            address = bsv.PrivateKey(7401, network=bsv.Network.TESTNET).address()
            for image in sevens[:2]:
                paid = client.post(f"/bounties/{bounty_id}/submissions",
                                   json={"pixels": image.tolist(), "address": address})
                assert paid.status_code == 202, paid.text
            bearer = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            wait_for("two images in the review queue",
                     lambda: client.get("/operator", headers=bearer).text.count('id="image-') == 2, timeout=60)
        yield Server(url, bounty_id, process.log), env
    finally:
        process.stop()


def test_an_operator_logs_in_sees_the_figures_approves_in_bulk_and_downloads_csv(
        browser: Browser, operator_server: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    server, env = operator_server
    context = browser.new_context(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(server.url + "/operator")
        page.fill("#token", "not-the-token")
        page.click("#login")
        expect(page.locator("#error")).to_have_text("That is not the operator token (BOUNTY_ADMIN_TOKEN).")
        page.fill("#token", OPERATOR_TOKEN)
        page.click("#login")

        bounty = httpx.get(f"{server.url}/bounties/{server.bounty_id}", timeout=30).json()
        row = page.locator(f"#bounty-{server.bounty_id}")
        expect(row.locator(".cost")).to_have_text(f"{bounty['cost_sats_per_image']:,}")
        expect(row.locator(".images-left")).to_have_text(f"{bounty['images_left']:,}")
        expect(row.locator(".balance")).to_have_text(f"{bounty['remaining_sats']:,}")
        expect(row.locator(".fees")).to_have_text(f"{bounty['fees_spent_sats']:,}")
        assert bounty["fees_spent_sats"] > 0  # two paid images: the figures are not all zero
        for image in ("#activity-plot", "#lineage-plot", ".queue img >> nth=0", ".queue img >> nth=1"):
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=page.locator(image)
                                   .element_handle())

        boxes = page.locator('#review input[name="image"]')
        expect(boxes).to_have_count(2)
        ids = [boxes.nth(i).get_attribute("value") for i in range(2)]
        boxes.nth(0).check()
        boxes.nth(1).check()
        page.click("#approve")
        expect(page.locator("#notice")).to_have_text(f"Approved 2 image(s): {ids[0]}, {ids[1]}.")
        expect(page.locator("#queue-empty")).to_have_text("No image waits for review.")
        listed = subprocess.run([str(BIN / "bounty"), "review", "list", "--json"], env=env, cwd=server.log.parent,
                                capture_output=True, text=True, timeout=120, check=True)
        assert {str(i["id"]): i["review"] for i in json.loads(listed.stdout)["images"]} == {
            ids[0]: "approved", ids[1]: "approved"}

        with page.expect_download() as download:
            page.click(f"#bounty-{server.bounty_id} a.csv")
        saved = tmp_path / "export.csv"
        download.value.save_as(saved)
        rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"), newline="")))
        assert len(rows) == 2 and {r["status"] for r in rows} <= {"seen", "confirmed"}
        assert {r["digit"] for r in rows} == {"7"}
        assert OPERATOR_TOKEN not in server.log.read_text(errors="replace")
    finally:
        context.close()

