#!/usr/bin/env python3
"""Drives the Doorbell dashboard in a headless Chromium (Selenium), against a real `doorbell serve`.

Usage: ui_browser.py CONFIG_JSON
CONFIG_JSON names: base (server URL), token (an api.tokens entry), doorbell (the binary), config
(doorbell.yml), flag (a file whose existence makes the `flaky` automation's step succeed),
screenshots (a folder).

Prints `OK <step>` for each step that passed; exits 1 with the reason at the first that failed.
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

settings = json.loads(sys.argv[1])
BASE = settings["base"]
SHOTS = settings["screenshots"]
os.makedirs(SHOTS, exist_ok=True)


def fail(message):
    print("FAIL " + message, flush=True)
    sys.exit(1)


def ok(step):
    print("OK " + step, flush=True)


def wait_for(what, predicate, seconds=20.0):
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # the page may be mid-load
            last = error
        time.sleep(0.2)
    fail(f"timed out after {seconds} s waiting for {what} (last error: {last})")


def trigger(fixture, base=BASE):
    """`doorbell trigger` with the real CLI binary; returns the new event's id."""
    result = subprocess.run(
        [settings["doorbell"], "trigger", *fixture.split(" "), "--config", settings["config"], "--url", f"{base}/hooks/stripe"],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        fail(f"doorbell trigger exited {result.returncode}: {result.stdout} {result.stderr}")
    reply = json.loads(result.stdout.strip().splitlines()[-1])
    return reply["id"]


options = Options()
options.binary_location = "/usr/bin/chromium"
for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"]:
    options.add_argument(argument)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(30)


def shot(name):
    # Full page height, so the screenshot shows the whole view.
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 600)")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(height + 120, 4000))
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))
    driver.set_window_size(width, 1000)


def text():
    return driver.find_element(By.TAG_NAME, "body").text


def no_alert():
    try:
        alert = driver.switch_to.alert
        fail(f"an alert opened: {alert.text!r}")
    except NoAlertPresentException:
        pass


def run_status(event_id):
    """The status classes of the event's automation runs, read from its timeline."""
    driver.get(f"{BASE}/ui/events/{event_id}")
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, "section.run h2 .status")]


try:
    # 1. Unauthenticated pages send the browser to sign-in.
    driver.get(BASE + "/ui/events")
    if not driver.current_url.startswith(BASE + "/ui/sign-in"):
        fail(f"unauthenticated /ui/events went to {driver.current_url}, not the sign-in page")
    shot("sign-in")
    with urllib.request.urlopen(BASE + "/ui/sign-in", timeout=10) as page:
        headers = page.headers
    policy = headers.get("Content-Security-Policy", "")
    for part in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]:
        if part not in policy:
            fail(f"Content-Security-Policy lacks {part}: {policy!r}")
    if "unsafe-inline" in policy or headers.get("X-Content-Type-Options") != "nosniff" or headers.get("Referrer-Policy") != "no-referrer":
        fail(f"security headers: {dict(headers)}")
    driver.find_element(By.ID, "secret").send_keys("not-the-token-at-all")
    driver.find_element(By.ID, "sign-in").click()
    # The click posts the form: wait for the answer page rather than read the one being replaced.
    wait_for("the refusal of a wrong token", lambda: "not an API token" in text())
    driver.find_element(By.ID, "secret").send_keys(settings["token"])
    driver.find_element(By.ID, "sign-in").click()
    wait_for("the overview after sign-in", lambda: driver.current_url.rstrip("/") == BASE + "/ui" and "Needs attention" in text())
    cookie = driver.get_cookie("doorbell_session")
    if not cookie or not cookie.get("httpOnly") or cookie.get("sameSite") != "Strict":
        fail(f"session cookie not HttpOnly/SameSite=Strict: {cookie}")
    driver.get(BASE + "/ui/events?status=bogus")
    if "status: unknown 'bogus'" not in text():
        fail("a bad filter value was not reported")
    ok("sign in with an API token (wrong token refused; cookie HttpOnly, SameSite=Strict; strict CSP, nosniff, no-referrer); a bad filter is reported")
    driver.get(BASE + "/ui")

    # 2. `doorbell trigger` (the real CLI) → the event appears on the open overview without a reload.
    wait_for("the live connection", lambda: driver.find_element(By.ID, "live").text == "live")
    driver.execute_script("window.__sameDocument = 'yes'")
    event_id = trigger("stripe payment_intent.succeeded")
    wait_for(f"event {event_id} on the overview", lambda: driver.find_elements(By.CSS_SELECTOR, f'#live-events tr[data-event-id="{event_id}"]'))
    if driver.execute_script("return window.__sameDocument") != "yes":
        fail("the page was reloaded")
    wait_for("the dead run in Needs attention, live", lambda: "flaky" in driver.find_element(By.ID, "live-failures").text)
    if driver.execute_script("return window.__sameDocument") != "yes":
        fail("the page was reloaded")
    ok(f"doorbell trigger: event {event_id} and its failure appeared live, without a reload")

    # 2b. Several nodes (PostgreSQL): an event stored by the other node appears live here too, and
    #     this browser's session is valid on the other node.
    other = settings.get("other_base")
    remote_dead = []
    if other:
        remote_id = trigger("stripe payment_intent.succeeded", base=other)
        wait_for(f"event {remote_id}, stored by the other node, on this node's page", lambda: driver.find_elements(By.CSS_SELECTOR, f'#live-events tr[data-event-id="{remote_id}"]'))
        if driver.execute_script("return window.__sameDocument") != "yes":
            fail("the page was reloaded")
        session = driver.get_cookie("doorbell_session")["value"]
        with urllib.request.urlopen(urllib.request.Request(f"{other}/ui/events/{remote_id}", headers={"Cookie": f"doorbell_session={session}"}), timeout=10) as page:
            if page.status != 200 or remote_id not in page.read().decode():
                fail("the session is not valid on the other node")
        remote_dead = [remote_id]  # its run is dead too; the bulk step below replays it with the others
        ok("several nodes: an event stored by the other node appeared live; the session works on the other node")

    # 3. Its timeline: headers, body, verdict, the dead run with its error.
    driver.find_element(By.CSS_SELECTOR, f'#live-events tr[data-event-id="{event_id}"] a').click()
    wait_for("the timeline", lambda: event_id in driver.find_element(By.TAG_NAME, "h1").text)
    body = driver.find_element(By.ID, "body").text
    if "payment_intent.succeeded" not in body or "stripe-signature" not in driver.find_element(By.ID, "headers").text:
        fail("the timeline lacks the body or the Stripe-Signature header")
    if "Verified" not in driver.find_element(By.ID, "verdict").text:
        fail("no verification verdict")
    wait_for("the dead run", lambda: run_status(event_id) == ["dead"])
    shot("timeline-dead")
    ok("timeline: headers, pretty body, verification verdict, dead run with its error")

    # 4. The dead run replayed from the UI succeeds (the step's file now exists).
    open(settings["flag"], "w").close()
    driver.find_element(By.CSS_SELECTOR, "section.run button.replay-failed").click()
    wait_for("the replay notice", lambda: "queued again" in text())
    wait_for("the replayed run to succeed", lambda: run_status(event_id) == ["succeeded"])
    shot("timeline-replayed")
    ok("a dead run replayed from the timeline succeeded")

    # 5. Bulk: three (four with the other node's) dead stripe runs and one dead run of another source;
    #    the filter source=stripe shows that count, and replays exactly those.
    os.remove(settings["flag"])
    stripe_events = [trigger("stripe checkout.session.completed") for _ in range(3)] + remote_dead
    other = urllib.request.Request(f"{BASE}/hooks/open", data=json.dumps({"type": "note.added", "note": "plain"}).encode(), headers={"Content-Type": "application/json"}, method="POST")
    other_id = json.loads(urllib.request.urlopen(other, timeout=10).read())["id"]
    for event in stripe_events + [other_id]:
        wait_for(f"the dead run of {event}", lambda: run_status(event) == ["dead"])
    driver.get(f"{BASE}/ui/runs?source=stripe&status=dead")
    shot("runs")
    driver.find_element(By.ID, "bulk-replay").click()
    count = wait_for("the confirm page", lambda: driver.find_element(By.ID, "replay-count").text)
    expected = len(stripe_events)
    if not count.startswith(f"{expected} runs will be replayed"):
        fail(f"confirm page says {count!r}, expected {expected} runs")
    shot("bulk-confirm")
    open(settings["flag"], "w").close()
    driver.find_element(By.ID, "confirm-replay").click()
    wait_for("the bulk notice", lambda: f"{expected} runs replayed." in text())
    for event in stripe_events:
        wait_for(f"the replayed run of {event}", lambda: run_status(event) == ["succeeded"])
    if run_status(other_id) != ["dead"]:
        fail("a run outside the filter was replayed")
    ok(f"bulk replay: the confirm page said {expected}, exactly those {expected} were replayed (the other source's dead run stayed dead)")

    # 6. Hostile text in a webhook's body and header shows as text and runs nothing.
    script_payload = "<script>window.__xss='script';alert('script')</script>"
    image_payload = "\"><img src=x onerror=\"window.__xss='img';alert('img')\">"
    hostile = urllib.request.Request(
        f"{BASE}/hooks/open", method="POST",
        data=json.dumps({"type": "note.added", "note": script_payload, "name": image_payload}).encode(),
        headers={"Content-Type": "application/json", "X-Note": image_payload, "X-Script": script_payload},
    )
    hostile_id = json.loads(urllib.request.urlopen(hostile, timeout=10).read())["id"]
    driver.get(f"{BASE}/ui/events/{hostile_id}")
    time.sleep(0.5)  # give an injected handler the chance to run (none may)
    no_alert()
    if driver.execute_script("return typeof window.__xss") != "undefined":
        fail("a payload ran: window.__xss = " + str(driver.execute_script("return window.__xss")))
    page_text = text()
    for payload in [script_payload, image_payload]:
        if payload not in page_text:
            fail(f"payload not shown as text: {payload}")
    if driver.find_elements(By.CSS_SELECTOR, "main img, main script"):
        fail("the payload became an element")
    shot("timeline-hostile")
    driver.get(f"{BASE}/ui")
    time.sleep(0.5)
    no_alert()
    if driver.execute_script("return typeof window.__xss") != "undefined":
        fail("a payload ran on the overview")
    ok("XSS payloads in body and header shown as text; no alert, no script ran, no element made")

    # 7. Endpoints: add one, its secret shown once; rotate; send a test event.
    driver.get(f"{BASE}/ui/endpoints/new")
    driver.find_element(By.NAME, "id").send_keys("crm")
    driver.find_element(By.NAME, "url").send_keys("http://127.0.0.1:9/hooks")
    driver.find_element(By.NAME, "events").send_keys("order.*")
    driver.find_element(By.ID, "save-endpoint").click()
    secret = wait_for("the new secret", lambda: driver.find_element(By.ID, "new-secret").text)
    if not secret.startswith("whsec_"):
        fail(f"unexpected secret {secret!r}")
    driver.get(f"{BASE}/ui/endpoints")
    if driver.find_elements(By.ID, "new-secret") or secret in text():
        fail("the secret is shown again")
    shot("endpoints")
    driver.find_element(By.CSS_SELECTOR, 'tr[data-endpoint-id="crm"] a[href$="/edit"]').click()
    description = wait_for("the edit form", lambda: driver.find_element(By.NAME, "description"))
    description.clear()
    description.send_keys("CRM <b>sync</b>")
    driver.find_element(By.ID, "save-endpoint").click()
    wait_for("the saved endpoint", lambda: "Endpoint crm saved." in text() and "CRM <b>sync</b>" in text())
    driver.find_element(By.CSS_SELECTOR, 'tr[data-endpoint-id="crm"] form[action$="/disable"] button').click()
    driver.switch_to.alert.accept()  # the confirmation app.js asks for
    wait_for("the disabled endpoint", lambda: "Endpoint crm disabled." in text())
    driver.find_element(By.CSS_SELECTOR, 'tr[data-endpoint-id="crm"] form[action$="/enable"] button').click()
    wait_for("the enabled endpoint", lambda: "Endpoint crm enabled." in text())
    driver.find_element(By.CSS_SELECTOR, 'tr[data-endpoint-id="crm"] form[action$="/test"] button').click()
    wait_for("the test event's timeline", lambda: "Test event sent to crm" in text() and driver.find_elements(By.CSS_SELECTOR, "section.delivery"))
    ok("endpoints: added (secret shown once), edited, disabled after a confirmation, enabled, test event sent and its delivery shown")

    # 8. Set-up: the URL to register and a sample sent through the real ingest path.
    driver.get(f"{BASE}/ui/setup")
    if f"{BASE}/hooks/stripe" not in text():
        fail("the set-up page does not show the stripe URL")
    shot("setup")
    driver.find_element(By.CSS_SELECTOR, 'section[data-source-id="stripe"] button.send-sample').click()
    wait_for("the sample's timeline", lambda: "Sample stripe payment_intent.succeeded sent to /hooks/stripe: 200" in text())
    if "Verified" not in driver.find_element(By.ID, "verdict").text:
        fail("the sample was not verified")
    ok("set-up: hook URL shown; a signed sample went through /hooks/stripe and opened its timeline")

    driver.get(f"{BASE}/ui")
    shot("overview")
    driver.get(f"{BASE}/ui/events")
    shot("events")
    driver.get(f"{BASE}/ui/deliveries")
    shot("deliveries")
    driver.set_window_size(390, 844)
    driver.get(f"{BASE}/ui")
    driver.save_screenshot(os.path.join(SHOTS, "overview-phone.png"))
    driver.set_window_size(1280, 1000)

    # 9. A state-changing request without (or with a wrong) CSRF token is refused with 403.
    session = driver.get_cookie("doorbell_session")["value"]
    for form in [b"", b"_csrf=0000"]:
        request = urllib.request.Request(f"{BASE}/ui/events/{event_id}/resend", data=form, method="POST",
                                         headers={"Cookie": f"doorbell_session={session}", "Content-Type": "application/x-www-form-urlencoded"})
        try:
            urllib.request.urlopen(request, timeout=10)
            fail(f"POST without a valid CSRF token ({form!r}) was accepted")
        except urllib.error.HTTPError as error:
            if error.code != 403:
                fail(f"POST without a valid CSRF token answered {error.code}, not 403")
    ok("state-changing requests without the CSRF token, or with a wrong one: 403")

    # 10. Sign out: the session ends everywhere, pages redirect to sign-in.
    driver.get(f"{BASE}/ui")
    driver.find_element(By.CSS_SELECTOR, "header form button").click()
    wait_for("the sign-in page", lambda: driver.current_url.startswith(BASE + "/ui/sign-in") and "Signed out." in text())
    driver.get(f"{BASE}/ui/runs")
    if not driver.current_url.startswith(BASE + "/ui/sign-in"):
        fail(f"after sign-out /ui/runs went to {driver.current_url}")
    request = urllib.request.Request(f"{BASE}/ui", headers={"Cookie": f"doorbell_session={session}"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    try:
        urllib.request.build_opener(NoRedirect).open(request, timeout=10)
        fail("the old session cookie still opens /ui")
    except urllib.error.HTTPError as error:
        if error.code != 303 or error.headers.get("Location") != "/ui/sign-in":
            fail(f"the old session cookie got {error.code} {error.headers.get('Location')}")
    ok("signed out: redirected to sign-in, the old cookie no longer works")

    # 11. The dashboard password (dashboard.password_hash from `doorbell hash-password`) signs in too.
    driver.find_element(By.ID, "secret").send_keys(settings["password"])
    driver.find_element(By.ID, "sign-in").click()
    wait_for("the overview after a password sign-in", lambda: driver.current_url.rstrip("/") == BASE + "/ui" and "Needs attention" in text())
    ok("sign in with the dashboard password")

    # 12. Failed sign-ins are limited per client address: after 10 within 15 minutes, 429.
    def sign_in_attempt(secret):
        with urllib.request.urlopen(f"{BASE}/ui/sign-in", timeout=10) as page:
            token_cookie = page.headers.get("Set-Cookie").split(";")[0]
            html = page.read().decode()
        form_token = html.split('name="_csrf" value="')[1].split('"')[0]
        data = urllib.parse.urlencode({"_csrf": form_token, "secret": secret}).encode()
        request = urllib.request.Request(f"{BASE}/ui/sign-in", data=data, method="POST", headers={"Cookie": token_cookie})
        try:
            with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code
    # One failure was the browser's wrong token in step 1: nine more make ten.
    codes = [sign_in_attempt("wrong-guess-%d" % n) for n in range(9)]
    if any(code != 401 for code in codes):
        fail(f"failed sign-ins answered {codes}")
    limited = sign_in_attempt(settings["token"])
    if limited != 429:
        fail(f"after 10 failures a sign-in (with the right token) answered {limited}, not 429")
    ok("sign-in attempts rate limited per address: 429 after 10 failures, even with the right token")
finally:
    driver.quit()
print("DONE", flush=True)
