"""A real browser through the web example's authorization flow.

Headless Chromium (Debian's chromium + chromium-driver, driven by python3-selenium) trusts the
app's and the emulator's CAs through an NSS database in a temporary HOME: certificate checks stay
on, no --ignore-certificate-errors. Steps: /connect shows the consent page with the requested
scopes; Approve lands on the app with the profile, under a new session id; the callback URL
replayed is refused; Deny is refused; a second browser profile cannot complete the first one's
authorization (and the first still can); the second profile, without a session and then with one,
neither sees the first one's account on / nor acts for it, while the first does. Each step leaves
a screenshot in the artifact directory.

usage: /usr/bin/python3 browser_test.py WEB_APP_BINARY ARTIFACT_DIR
Exit 77 (ctest SKIP_RETURN_CODE) only when Chromium cannot start.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from web_app_process import WebApp  # noqa: E402

SKIP = 77


def skip(reason):
    print("SKIPPED: Chromium cannot start here: %s" % reason)
    sys.exit(SKIP)


try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:
    skip("python3-selenium is missing (%s); scripts/run.sh test installs it" % e)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def make_nss_home(root, certificates):
    """A HOME whose ~/.pki/nssdb trusts exactly `certificates` as CAs (Chromium on Linux reads it)."""
    home = os.path.join(root, "home")
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db)
    subprocess.run(["certutil", "-N", "-d", "sql:" + db, "--empty-password"], check=True)
    for i, pem in enumerate(certificates):
        path = os.path.join(root, "ca-%d.pem" % i)
        with open(path, "w") as f:
            f.write(pem)
        subprocess.run(["certutil", "-A", "-d", "sql:" + db, "-n", "test-ca-%d" % i, "-t", "C,,", "-i", path],
                       check=True)
    return home


def start_browser(profile_dir):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1000,800", "--user-data-dir=" + profile_dir):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Steps:
    def __init__(self, app, artifacts):
        self.app = app
        self.artifacts = artifacts
        self.count = 0

    def shot(self, driver, name):
        self.count += 1
        path = os.path.join(self.artifacts, "%02d_%s.png" % (self.count, name))
        driver.save_screenshot(path)
        print("screenshot: %s" % path)

    def open_consent(self, driver):
        driver.get(self.app.origin + "/connect")
        WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((By.ID, "approve")))
        return driver.current_url

    def heading(self, driver):
        return driver.find_element(By.TAG_NAME, "h1").text

    def click_and_wait(self, driver, button_id, element_id):
        driver.find_element(By.ID, button_id).click()
        WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((By.ID, element_id)))


def session_cookies(driver):
    """The values of every __Host-session cookie the browser holds, whatever page it is on."""
    cookies = driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
    return [c["value"] for c in cookies if c["name"] == "__Host-session"]


def post_tasks_from(driver, origin, account):
    """POST /accounts/{account}/tasks as the app's own page would (fetch, JSON, same origin: the
    browser sends its cookie), from /healthz, a page without the CSP that forbids fetch. The status."""
    driver.get(origin + "/healthz")
    return driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: "POST", credentials: "same-origin",
                             headers: {"Content-Type": "application/json"}, body: '{"contact_ids":["a"]}'})
            .then(r => done(r.status), e => done(String(e)));""",
        "/accounts/%s/tasks" % account)


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print("ok: %s" % what)


def run(app, artifacts, root):
    steps = Steps(app, artifacts)
    home = make_nss_home(root, app.ca_certificates())
    os.environ["HOME"] = home  # Chromium reads $HOME/.pki/nssdb
    try:
        first = start_browser(os.path.join(root, "profile-1"))
    except WebDriverException as e:
        skip(str(e).splitlines()[0] if str(e) else repr(e))
    second = None
    try:
        # 1. The consent page, with the app's name and the requested scopes.
        consent_url = steps.open_consent(first)
        steps.shot(first, "consent")
        check(consent_url.startswith("https://127.0.0.1:"), "the browser is at the emulator's authorize page")
        check("Example CRM" in steps.heading(first), "the consent page names the app")
        scopes = [e.text for e in first.find_elements(By.CSS_SELECTOR, "li.scope code")]
        check({"contacts_search", "person_read"} <= set(scopes), "the requested scopes are listed: %s" % scopes)
        before_login = session_cookies(first)
        check(len(before_login) == 1, "/connect gave the browser a session")

        # 2. Approve: back at the app, which shows who connected.
        steps.click_and_wait(first, "approve", "connected")
        steps.shot(first, "connected")
        callback_url = first.current_url
        check(callback_url.startswith(app.origin + "/oauth/callback?"), "redirected to the app's callback")
        check(first.find_element(By.ID, "profile-name").text == "Ada Lovelace", "the profile's name is shown")
        check(first.find_element(By.ID, "profile-email").text == "ada@example.com", "the profile's email is shown")
        session = first.get_cookie("__Host-session")  # the app's, readable on its pages
        check(session is not None and session["httpOnly"] and session["secure"] and session["sameSite"] == "Lax"
              and session["path"] == "/", "the session cookie is HttpOnly, Secure, SameSite=Lax: %s"
              % {k: v for k, v in (session or {}).items() if k != "value"})
        check(session["value"] != before_login[0], "the callback gave the session a new id (session fixation)")
        account_id = first.find_element(By.ID, "account-id").text
        first.get(app.origin + "/")
        check("Ada Lovelace" in first.find_element(By.ID, "accounts").text, "the account is listed on /")

        # 3. The same callback again: refused.
        first.get(callback_url)
        WebDriverWait(first, 30).until(expected_conditions.presence_of_element_located((By.ID, "reason")))
        steps.shot(first, "replayed")
        check(steps.heading(first) == "This callback was already used", "a replayed callback is refused")

        # 4. Deny: the app says so.
        steps.open_consent(first)
        steps.click_and_wait(first, "deny", "reason")
        steps.shot(first, "denied")
        check(steps.heading(first) == "Access was denied", "a denied authorization is refused")

        # 5. A second browser profile takes the first one's authorization request to the end.
        pending_url = steps.open_consent(first)
        second = start_browser(os.path.join(root, "profile-2"))
        second.get(pending_url)
        WebDriverWait(second, 30).until(expected_conditions.presence_of_element_located((By.ID, "approve")))
        steps.click_and_wait(second, "approve", "reason")
        steps.shot(second, "other_profile")
        check(steps.heading(second) == "This authorization belongs to another browser",
              "another profile cannot complete the first one's authorization")
        # ... and the first profile still can: its state was not used up by the refusal.
        steps.click_and_wait(first, "approve", "connected")
        steps.shot(first, "first_profile_completes")
        check(first.find_element(By.ID, "profile-name").text == "Ada Lovelace", "the first profile completes")

        # 6. The second profile does not see the first one's account, nor act for it; the first does.
        check(session_cookies(second) == [], "(the second profile has no session of the app)")
        second.get(app.origin + "/")
        steps.shot(second, "other_profile_home")
        check(second.find_elements(By.ID, "no-accounts") and "Ada Lovelace" not in second.page_source
              and account_id not in second.page_source, "the second profile's / does not show the account")
        check(post_tasks_from(second, app.origin, account_id) == 401, "without a session it cannot act for it (401)")
        steps.open_consent(second)  # /connect gives it a session of its own
        check(len(session_cookies(second)) == 1, "(the second profile now has a session)")
        second.get(app.origin + "/")
        check(second.find_elements(By.ID, "no-accounts") and account_id not in second.page_source,
              "with a session of its own, its / still does not show the account")
        check(post_tasks_from(second, app.origin, account_id) == 404, "nor can it act for it (404)")
        check(post_tasks_from(first, app.origin, account_id) == 200, "the first profile acts for its account")
    finally:
        if second is not None:
            second.quit()
        first.quit()


def main():
    binary, artifacts = sys.argv[1], sys.argv[2]
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        skip("%s or %s is missing; scripts/run.sh test installs chromium and chromium-driver"
             % (CHROMIUM, CHROMEDRIVER))
    if shutil.which("certutil") is None:
        skip("certutil (libnss3-tools) is missing, so no CA can be trusted")
    shutil.rmtree(artifacts, ignore_errors=True)
    os.makedirs(artifacts)
    root = tempfile.mkdtemp(prefix="web_app_browser_")
    app = WebApp(binary, os.path.join(root, "app"), "--threads", "2")
    try:
        run(app, artifacts, root)
    finally:
        status = app.stop()
        shutil.rmtree(root, ignore_errors=True)
    check(status == 0, "web_app stopped cleanly on SIGTERM (exit status %s)" % status)
    print("screenshots in %s" % artifacts)


if __name__ == "__main__":
    main()
