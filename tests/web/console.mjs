// Drives headless Chromium through the Gatehouse review console for
// tests/e2e_web.rs, which sets up the bastion, the sessions and the links
// and passes them in a JSON file (argv[2]). Exits 0 when every check
// passed; otherwise prints what failed and exits 1. Screenshots go to
// config.shots.
import { statSync } from "node:fs";
import { start } from "./harness.mjs";

const { cfg, base, failures, log, check, browser } = await start("[web-e2e]");

// Every page of every context: CSP violations and script errors fail the run.
const cspViolations = [];
async function newContext() {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  ctx.on("page", (p) => watch(p));
  return ctx;
}
function watch(page) {
  page.on("console", (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to/i.test(t)) cspViolations.push(t);
  });
  page.on("pageerror", (e) => cspViolations.push(`page error: ${e.message}`));
  page.on("dialog", (d) => {
    cspViolations.push(`a dialog opened: ${d.message()}`);
    d.dismiss();
  });
}

async function shot(page, name, expectText) {
  const path = `${cfg.shots}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  const text = await page.innerText("body");
  const size = statSync(path).size;
  check(size > 10000, `${name}.png rendered (${size} bytes)`);
  for (const t of [].concat(expectText)) check(text.includes(t), `${name} page shows ${JSON.stringify(t)}`);
}

async function termText(page) {
  return page.evaluate(() => {
    const t = document.querySelector("#player .ap-term");
    return t ? t.textContent : "";
  });
}

async function waitTerm(page, needle, ms = 20000) {
  try {
    await page.waitForFunction(
      (n) => {
        const t = document.querySelector("#player .ap-term");
        return t && t.textContent.includes(n);
      },
      needle,
      { timeout: ms }
    );
    return true;
  } catch {
    log("player text was:", JSON.stringify(await termText(page)));
    return false;
  }
}

// Opens a sign-in link (a page with a button: the GET spends nothing) and
// presses its button, which POSTs it; returns the POST's status.
async function redeem(page, link) {
  const first = await page.goto(link);
  if (first.status() !== 200) return first.status();
  if ((await page.$("#sign-in")) === null) return -1;
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && r.url() === link),
    page.click("#sign-in"),
  ]);
  return resp.status();
}

async function signIn(ctx, link, user) {
  const page = await ctx.newPage();
  const status = await redeem(page, link);
  check(status === 200, `${user}: the link's button signs in (status ${status})`);
  // Auditors and approvers land on Today, everyone else on their sessions.
  await page.waitForURL(/\/(today|sessions)$/, { timeout: 10000 }).catch(() => {});
  check(/\/(today|sessions)$/.test(page.url()), `${user}: lands on /today or /sessions (${page.url()})`);
  return page;
}

try {
  // ---------------------------------------------------------------- auditor
  const carolCtx = await newContext();
  const carol = await signIn(carolCtx, cfg.links.carol, "carol");
  {
    const resp = await carol.goto(`${base}/sessions`);
    const h = resp.headers();
    check(/default-src 'none'/.test(h["content-security-policy"] || "") && !/unsafe-inline|'unsafe-eval'/.test(h["content-security-policy"]), "strict CSP");
    check(/frame-ancestors 'none'/.test(h["content-security-policy"] || ""), "frame-ancestors none");
    check((h["strict-transport-security"] || "").includes("max-age="), "HSTS");
    check(h["x-frame-options"] === "DENY", "X-Frame-Options DENY");
    check(h["x-content-type-options"] === "nosniff", "nosniff");
    check(h["referrer-policy"] === "no-referrer", "Referrer-Policy");
    const cookies = await carolCtx.cookies();
    const c = cookies.find((c) => c.name === "__Host-gatehouse");
    check(c && c.secure && c.httpOnly && c.sameSite === "Strict", "cookie Secure, HttpOnly, SameSite=Strict");
    await shot(carol, "sessions", ["Sessions", "alice", "carol"]);
  }
  // Filter: alice's recorded sessions only.
  await carol.fill("input[name=user]", "alice");
  await carol.selectOption("select[name=recorded]", "yes");
  await carol.click("#apply");
  await carol.waitForURL(/user=alice/);
  {
    const rows = await carol.$$eval("#sessions tbody tr", (trs) => trs.map((t) => t.innerText));
    check(rows.length >= 1 && rows.every((r) => r.includes("alice")), `filter user=alice recorded=yes: ${rows.length} rows, all alice's`);
    check(rows.every((r) => !r.includes("carol")), "the filter leaves carol's sessions out");
    await shot(carol, "sessions-filtered", ["alice"]);
  }
  // Session detail: audit events, the hostile command line shown as text.
  await carol.goto(`${base}/sessions/${cfg.alice_rec}`);
  {
    const text = await carol.innerText("body");
    check(text.includes("session.start") && text.includes("session.end"), "session page lists its audit events");
    check(text.includes("<script>window.pwned=1</script>"), "hostile command line shown literally");
    const injected = await carol.evaluate(() => ({
      pwned: window.pwned,
      imgs: document.querySelectorAll("img").length,
      scripts: [...document.scripts].filter((s) => !s.src).length,
    }));
    check(injected.pwned === undefined && injected.imgs === 0 && injected.scripts === 0, `hostile strings inert ${JSON.stringify(injected)}`);
    const codes = await carol.$$eval("code", (cs) => cs.map((c) => c.textContent).join("\n"));
    check(codes.includes("BIDI-") && codes.includes("-END"), "the command with controls is shown");
    check(!/[\u202a-\u202e\u2066-\u2069\u200e\u200f\u001b]/.test(codes), `bidi controls and ESC neutralised: ${JSON.stringify(codes.match(/BIDI.{0,20}/g))}`);
    await shot(carol, "session", ["Audit events", "session.start", cfg.alice_rec]);
  }
  // Player: play the recording; the terminal shows what the command printed.
  await carol.goto(`${base}/recordings/${cfg.alice_rec}`);
  await carol.waitForSelector("#player .ap-wrapper", { timeout: 15000 });
  await carol.evaluate(() => window.gatehousePlayer.play());
  check(await waitTerm(carol, "WEB-MARK-42"), "the player renders what the remote command printed");
  {
    const pwned = await carol.evaluate(() => window.pwned);
    check(pwned === undefined, "cast bytes are not injected as HTML");
    await shot(carol, "player", ["Recording", "Review state"]);
  }
  // Search inside the recording, jump to the hit.
  await carol.fill("#q", "WEB-MARK");
  await carol.click("#search");
  await carol.waitForSelector("#hits button.seek", { timeout: 15000 });
  {
    const hits = await carol.$$eval("#hits li", (l) => l.map((x) => x.innerText));
    check(hits.some((h) => h.includes("WEB-MARK-42")), `search lists the hit (${hits.join(" | ")})`);
    await carol.waitForSelector("#player .ap-wrapper", { timeout: 15000 });
    // The screen hit (the command line matches too, at 0 s).
    await carol.click("#hits li:has-text('screen:') button.seek");
    check(await waitTerm(carol, "WEB-MARK-42"), "seeking to the hit shows it on the player's screen");
    await shot(carol, "search", ["WEB-MARK-42"]);
  }
  // A note over 500 characters is refused, not cut (issue 17 item 6).
  {
    const csrf = await carol.getAttribute("header input[name=csrf]", "value");
    const long = await carolCtx.request.post(`${base}/recordings/${cfg.alice_rec}/review`, {
      form: { csrf, note: "n".repeat(501) + " TICKET-AT-THE-END" },
    });
    check(long.status() === 400 && (await long.text()).includes("too long"), `a 519-character note -> ${long.status()}`);
    check((await carol.innerText("#review-state")).trim() === "unreviewed", "the refused note reviewed nothing");
  }
  // A hit after a long pause: the player squeezes pauses, the seek lands
  // on the hit, not past it (issue 17 item 13).
  await carol.goto(`${base}/recordings/${cfg.pause_rec}?q=ZEBRA-42`);
  await carol.waitForSelector("#player .ap-wrapper", { timeout: 15000 });
  await carol.waitForSelector("#hits button.seek", { timeout: 15000 });
  {
    const b = await carol.$("#hits li:has-text('screen:') button.seek");
    const at = parseFloat(await b.getAttribute("data-time"));
    check(at < 5, `the hit 8 s into the session plays at ${at} s on the squeezed timeline`);
    await b.click();
    check(await waitTerm(carol, "ZEBRA-42"), "seeking to the hit after a pause shows it");
    const t = await termText(carol);
    check(!t.includes("AFTER-MARK-2"), `the seek stops at the hit, not past it: ${JSON.stringify(t.trim())}`);
  }
  await carol.goto(`${base}/recordings/${cfg.alice_rec}`);
  // Review it.
  await carol.fill("#note", "looked fine <b>ok</b>");
  await carol.click("#review");
  await carol.waitForURL(`${base}/recordings/${cfg.alice_rec}`);
  check((await carol.innerText("#review-state")).trim() === "reviewed", "marked reviewed");
  await shot(carol, "reviewed", ["reviewed", "looked fine <b>ok</b>"]);

  // Missing and wrong CSRF tokens are refused with 403.
  {
    const r1 = await carolCtx.request.post(`${base}/recordings/${cfg.alice_rec}/review`, { form: { note: "no token" } });
    check(r1.status() === 403, `POST without CSRF token -> ${r1.status()}`);
    const r2 = await carolCtx.request.post(`${base}/sessions/${cfg.live}/kill`, { form: { reason: "x", csrf: "forged" } });
    check(r2.status() === 403, `POST with a wrong CSRF token -> ${r2.status()}`);
  }

  // Reports.
  await carol.goto(`${base}/reports`);
  await shot(carol, "reports", ["Daily reports", cfg.report]);
  await carol.click(`a[href="/reports/${cfg.report}"]`);
  await carol.waitForURL(`${base}/reports/${cfg.report}`);
  await shot(carol, "report", ["alice"]);
  // The report's recording links lead to the recording in the console
  // (issue 17 item 14).
  {
    const link = await carol.$(`a[href^="../recordings/"]`);
    check(link !== null, "the report links a recording");
    if (link) {
      await link.click();
      await carol.waitForURL(/\/recordings\/[^/]+$/, { timeout: 10000 }).catch(() => {});
      const text = await carol.innerText("body");
      check(/\/recordings\/[^/]+$/.test(carol.url()) && text.includes("Review state"), `the report's link opens the recording (${carol.url()})`);
    }
    const nf = await carol.goto(`${base}/no-such-page`);
    check(nf.status() === 404 && (await carol.$("#home")) !== null, "a 404 page leads back");
    await carol.click("#home");
    await carol.waitForURL(`${base}/sessions`);
    check(carol.url() === `${base}/sessions`, "and back is the sessions list");
  }

  // Live: watch alice's running session, then end it with a reason.
  await carol.goto(`${base}/sessions/${cfg.live}/live`);
  check(await waitTerm(carol, "LIVE-MARK-9", 30000), "the live player shows the running session's output");
  await shot(carol, "live", ["Live session", "End session"]);
  await carol.fill("#kill-reason", cfg.kill_reason);
  await carol.click("#kill");
  // The live page stays: it says the end was requested, then that the
  // session ended, and keeps its last screen (issue 21 item 8).
  {
    const said = await carol
      .waitForFunction(() => /requested|ended/.test(document.getElementById("live-state").textContent), null, { timeout: 10000 })
      .then(() => true, () => false);
    check(said && carol.url().endsWith("/live"), `the live page says the end was requested (${await carol.innerText("#live-state")})`);
    const ended = await carol
      .waitForFunction(() => document.getElementById("live-state").className === "ended", null, { timeout: 30000 })
      .then(() => true, () => false);
    check(ended && (await carol.innerText("#live-state")).includes("ended"), "then that the session ended");
    check((await termText(carol)).includes("LIVE-MARK-9"), "and keeps the last screen");
  }
  await carol.goto(`${base}/sessions/${cfg.live}`);
  {
    let ended = false;
    for (let i = 0; i < 40 && !ended; i++) {
      await carol.waitForTimeout(500);
      await carol.reload();
      ended = (await carol.innerText("body")).includes(cfg.kill_reason);
    }
    check(ended, "the session page shows the session ended with the reason");
  }

  // --------------------------------------------------------------- approver
  const daveCtx = await newContext();
  const dave = await signIn(daveCtx, cfg.links.dave, "dave");
  await dave.goto(`${base}/grants`);
  {
    const row = `#grant-${cfg.grant}`;
    check((await dave.innerText(row)).includes("TICKET-WEB-9"), "the pending request shows who, what and why");
    await shot(dave, "grants-pending", ["Approve", "Deny", "alice", "1h", "<img src=x onerror=window.pwned=3>"]);
    const injected = await dave.evaluate(() => ({ pwned: window.pwned, imgs: document.querySelectorAll("img").length }));
    check(injected.pwned === undefined && injected.imgs === 0, `a hostile grant reason is inert ${JSON.stringify(injected)}`);
    // Never one's own: no button, and a forged POST is refused.
    const own = `#grant-${cfg.own_grant}`;
    check((await dave.innerText(own)).includes("DAVE-OWN"), "dave sees his own request");
    check((await dave.$(`${own} button.approve`)) === null, "no approve button on one's own request");
    const csrf = await dave.getAttribute("header input[name=csrf]", "value");
    const self = await daveCtx.request.post(`${base}/grants/${cfg.own_grant}/approve`, { form: { csrf } });
    check(self.status() === 403, `approving one's own request -> ${self.status()}`);
    await dave.click(`${row} button.approve`);
    await dave.waitForURL(`${base}/grants`);
    check((await dave.innerText(row)).includes("active"), "approved: the grant is active");
    await shot(dave, "grants", ["Grants", "TICKET-WEB-9", "dave"]);
  }

  // ------------------------------------------------------------ plain user
  const aliceCtx = await newContext();
  const alice = await signIn(aliceCtx, cfg.links.alice, "alice");
  {
    const other = await alice.goto(`${base}/recordings/${cfg.carol_rec}`);
    check(other.status() === 404, `alice opening carol's recording -> ${other.status()}`);
    const cast = await aliceCtx.request.get(`${base}/recordings/${cfg.carol_rec}/cast`);
    check(cast.status() === 404, `alice fetching carol's cast -> ${cast.status()}`);
    const sess = await alice.goto(`${base}/sessions/${cfg.carol_rec}`);
    check(sess.status() === 404, `alice opening carol's session -> ${sess.status()}`);
    await alice.goto(`${base}/sessions?user=carol`);
    const rows = await alice.$$eval("#sessions tbody tr", (trs) => trs.map((t) => t.innerText));
    check(rows.every((r) => !r.includes("carol")), "a user filtering for another user still sees only their own");
    const own = await alice.goto(`${base}/recordings/${cfg.alice_rec}`);
    check(own.status() === 200, "alice opens her own recording");
    {
      const text = await alice.innerText("body");
      check(!text.includes("looked fine") && (await alice.$("#reviews")) === null && (await alice.$("#review-state")) === null,
        "the reviewed engineer reads no reviewer's note or state (issue 17 item 16)");
      await alice.goto(`${base}/sessions/${cfg.alice_rec}`);
      const page = await alice.innerText("body");
      check(!page.includes("looked fine") && !page.includes("recording.reviewed") && !page.includes("· reviewed"),
        "nor on her session's page");
      await alice.goto(`${base}/sessions?review=reviewed`);
      const rows = await alice.$$eval("#sessions tbody tr", (trs) => trs.map((t) => t.innerText));
      check(rows.every((r) => !/reviewed|flagged/.test(r)), `nor in her sessions list: ${rows.join(" | ")}`);
      await alice.goto(`${base}/recordings/${cfg.alice_rec}`);
    }
    check((await alice.$("#review")) === null, "no review form for a non-auditor");
    const review = await aliceCtx.request.post(`${base}/recordings/${cfg.alice_rec}/review`, {
      form: { csrf: "x" },
    });
    check(review.status() === 403, `alice reviewing -> ${review.status()}`);
    const reports = await alice.goto(`${base}/reports`);
    check(reports.status() === 403, `alice opening reports -> ${reports.status()}`);
  }

  // --------------------------------------------------------------- refusals
  {
    const ctx = await newContext();
    const p = await ctx.newPage();
    const reused = await redeem(p, cfg.links.carol);
    check(reused === 403, `a used link is refused (${reused})`);
    const unknown = await redeem(p, `${base}/login/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`);
    check(unknown === 403, `an unknown link is refused (${unknown})`);
    await ctx.addCookies([{ name: "__Host-gatehouse", value: "forged-" + "x".repeat(40), url: base, secure: true }]);
    const forged = await p.goto(`${base}/sessions`);
    check(forged.status() === 401, `a forged cookie is refused (${forged.status()})`);
    const api = await ctx.request.get(`${base}/recordings/${cfg.alice_rec}/cast`);
    check(api.status() === 401, `a forged cookie fetches no cast (${api.status()})`);
    if (cfg.expired_wait_ms > 0) await p.waitForTimeout(cfg.expired_wait_ms);
    const expired = await redeem(p, cfg.links.expired);
    check(expired === 403, `an expired link is refused (${expired})`);
  }
  // Signing out ends the session on the server: the old cookie is refused.
  {
    const cookie = (await carolCtx.cookies()).find((c) => c.name === "__Host-gatehouse");
    await carol.goto(`${base}/sessions`);
    await carol.click("header button[type=submit]");
    await carol.waitForLoadState();
    check((await carol.innerText("body")).includes("Signed out"), "signed out");
    const ctx = await newContext();
    await ctx.addCookies([{ name: cookie.name, value: cookie.value, url: base, secure: true }]);
    const again = await ctx.request.get(`${base}/sessions`);
    check(again.status() === 401, `a signed-out cookie is refused (${again.status()})`);
  }
  check(cspViolations.length === 0, `no CSP violations or page errors: ${JSON.stringify(cspViolations)}`);
} catch (e) {
  failures.push(`exception: ${e.stack || e}`);
  log("exception:", e.stack || e);
} finally {
  await browser.close();
}

if (failures.length) {
  console.log(`${failures.length} check(s) failed:\n - ${failures.join("\n - ")}`);
  process.exit(1);
}
console.log("all browser checks passed");
