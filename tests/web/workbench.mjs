// Drives headless Chromium through the console as a reviewer's workbench
// for tests/e2e_workbench.rs (issue 21), which creates the sessions, the
// grants and the links and passes them in a JSON file (argv[2]). Each page
// is shot at 1280x720 and 390x844, and at 390 px the page must not be
// wider than the screen (tables scroll inside their box). Exits 0 when
// every check passed; otherwise prints what failed and exits 1.
import { statSync } from "node:fs";
import { start } from "./harness.mjs";

const { cfg, base, failures, log, check, browser } = await start("[workbench]");

const problems = [];
async function newContext() {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 720 } });
  ctx.on("page", (p) => {
    p.on("console", (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
    });
    p.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  });
  return ctx;
}

async function signIn(ctx, link, user) {
  const page = await ctx.newPage();
  await page.goto(link);
  await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && r.url() === link),
    page.click("#sign-in"),
  ]);
  await page.waitForURL(/\/(today|sessions)$/, { timeout: 10000 }).catch(() => {});
  check(/\/today$/.test(page.url()), `${user} lands on Today (${page.url()})`);
  return page;
}

// The page at both sizes: a screenshot of each (not blank), and at 390 px
// no horizontal overflow of the page itself.
async function both(page, url, name, expect) {
  for (const [w, h, tag] of [[1280, 720, "wide"], [390, 844, "narrow"]]) {
    await page.setViewportSize({ width: w, height: h });
    const resp = await page.goto(`${base}${url}`);
    const path = `${cfg.shots}/${name}-${tag}.png`;
    await page.screenshot({ path, fullPage: true });
    const size = statSync(path).size;
    check(size > 10000, `${name} at ${w}x${h} rendered (${size} bytes, status ${resp.status()})`);
    const text = await page.innerText("body");
    for (const t of [].concat(expect || [])) check(text.includes(t), `${name} at ${w}px shows ${JSON.stringify(t)}`);
    const o = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, vw: window.innerWidth, nav: !!document.querySelector("header nav") }));
    check(o.nav, `${name} at ${w}px has the navigation`);
    if (w === 390) check(o.sw <= o.vw, `${name} at 390px: no horizontal page overflow (scrollWidth ${o.sw}, viewport ${o.vw})`);
  }
  await page.setViewportSize({ width: 1280, height: 720 });
}

async function countOf(page, id) {
  const t = await page.textContent(`#${id} .n`).catch(() => null);
  return t === null ? null : parseInt(t, 10);
}

try {
  const carolCtx = await newContext();
  const carol = await signIn(carolCtx, cfg.links.carol, "carol (auditor)");

  // ------------------------------------------------------------- Today
  await both(carol, "/today", "today", ["Today", "Suspicious today"]);
  await carol.goto(`${base}/today`);
  const counts = {
    review: await countOf(carol, "count-review"),
    pending: await countOf(carol, "count-pending"),
    live: await countOf(carol, "count-live"),
    suspicious: await countOf(carol, "count-suspicious"),
    lockouts: await countOf(carol, "count-lockouts"),
  };
  log("today's counts:", JSON.stringify(counts), "expected:", JSON.stringify(cfg.expect));
  check(counts.review === cfg.expect.review, `recordings waiting for review: ${counts.review} = ${cfg.expect.review}`);
  check(counts.pending === cfg.expect.pending, `pending requests: ${counts.pending} = ${cfg.expect.pending}`);
  check(counts.live === cfg.expect.live, `live sessions: ${counts.live} = ${cfg.expect.live}`);
  check(counts.lockouts === cfg.expect.lockouts, `lockouts: ${counts.lockouts} = ${cfg.expect.lockouts}`);
  {
    const waiting = await carol.$$eval("#to-review + div table tbody td a", (a) => a.map((x) => x.getAttribute("href"))).catch(() => []);
    check(waiting.includes(`/sessions/${cfg.exec_session}`), `the recorded exec waits for review, listed (${waiting.join(", ")})`);
  }
  const blockedRows = await carol.$$eval("#suspicious ~ div table tbody tr[data-kind=blocked_command]", (t) => t.length).catch(() => 0);
  check(counts.suspicious === cfg.expect.suspicious, `suspicious today: ${counts.suspicious} = ${cfg.expect.suspicious} (gatehouse report daily for today)`);
  check(counts.suspicious >= 1 && blockedRows === cfg.expect.blocked, `suspicious today lists the blocked command (${blockedRows} of ${counts.suspicious})`);
  check(await carol.getAttribute("#count-pending", "href") === "/grants?state=pending", "the pending count links to the pending requests");
  check(await carol.getAttribute("#count-live", "href") === "/sessions?live=yes&all=yes", "the live count links to the live sessions");

  // ------------------------------------------------------------ Sessions
  await both(carol, "/sessions", "sessions", ["Kind", "Duration", "WORKBENCH-EXEC"]);
  await carol.goto(`${base}/sessions`);
  {
    const kinds = await carol.$$eval("#sessions tbody tr[data-kind]", (t) => t.map((r) => r.dataset.kind));
    check(kinds.length > 0 && !kinds.includes("command mode") && !kinds.includes("refused"), `command-mode calls and refusals hidden by default (${kinds.join(", ")})`);
    check(kinds.includes("exec"), "exec sessions listed");
    const exec = await carol.innerText(`#sessions tr[data-session="${cfg.exec_session}"] td.kind`);
    check(exec.includes("WORKBENCH-EXEC"), `an exec shows its command (${exec})`);
    const blocked = await carol.innerText(`#sessions tr[data-session="${cfg.blocked_session}"] td.blocked`);
    check(blocked.trim() === "1", `the blocked-command count (${blocked})`);
  }
  await Promise.all([carol.waitForURL(/all=yes/), carol.click("#toggle-all")]);
  {
    const kinds = await carol.$$eval("#sessions tbody tr[data-kind]", (t) => t.map((r) => r.dataset.kind));
    check(kinds.includes("command mode") && kinds.includes("refused"), `the toggle shows command-mode calls and refusals (${kinds.join(", ")})`);
    const refused = await carol.innerText(`#sessions tr[data-session="${cfg.refused_session}"] td.kind`);
    check(refused.includes(cfg.refused_code), `a refused attempt shows its reason code ${cfg.refused_code} (${refused})`);
    await carol.screenshot({ path: `${cfg.shots}/sessions-all.png`, fullPage: true });
  }
  // Prefix filter, any case; the pick-list offers the policy's users.
  await carol.goto(`${base}/sessions?user=ALI`);
  {
    const users = await carol.$$eval("#sessions tbody tr[data-kind] td:nth-child(2)", (t) => t.map((c) => c.textContent));
    check(users.length > 0 && users.every((u) => u === "alice"), `user "ALI" matches alice's sessions (${users.length})`);
    const picks = await carol.$$eval("#pick-users option", (o) => o.map((x) => x.value));
    check(picks.includes("alice") && picks.includes("dave"), `the user pick-list (${picks.join(", ")})`);
  }
  await carol.goto(`${base}/sessions?sort=duration`);
  {
    const head = await carol.innerText("#sort-duration");
    check(head.includes("↓"), "sorted by duration");
  }

  // ------------------------------------------------------ Session detail
  await both(carol, `/sessions/${cfg.blocked_session}`, "session", ["Audit events", "Duration", "blocked: "]);
  await carol.goto(`${base}/sessions/${cfg.blocked_session}`);
  {
    const row = await carol.$("#events tr.refusal[data-kind='command.blocked']");
    check(row !== null, "the timeline has the blocked command as a refusal row");
    if (row) {
      const bg = await row.$eval("td", (td) => getComputedStyle(td).backgroundColor);
      check(bg !== "rgba(0, 0, 0, 0)" && bg !== "rgb(255, 255, 255)", `the blocked command is highlighted (${bg})`);
      const text = await row.innerText();
      check(text.includes("WORKBENCH-BLOCK"), `the timeline says what was blocked (${text.slice(0, 80)})`);
    }
    const raw = await carol.$("#events details pre");
    check(raw !== null, "the raw JSON is behind a disclosure");
  }
  await carol.goto(`${base}/sessions/${cfg.live_session}`);
  {
    const g = await carol.innerText("#grant");
    check(g.includes(`#${cfg.grant}`) && g.includes("TICKET-WB-7") && g.includes("dave"), `the grant with its reason and approver (${g})`);
  }
  if (cfg.recording) await both(carol, `/recordings/${cfg.recording}`, "recording", ["Recording"]);
  if (cfg.recording) {
    // The player's controls inside a 1280x720 window without scrolling.
    await carol.setViewportSize({ width: 1280, height: 720 });
    await carol.goto(`${base}/recordings/${cfg.recording}`);
    const bar = await carol.waitForSelector("#player .ap-control-bar", { state: "attached", timeout: 15000 }).catch(() => null);
    check(bar !== null, "the player has its control bar");
    if (bar) {
      await carol.hover("#player");
      const box = await bar.boundingBox();
      const scroll = await carol.evaluate(() => ({ x: window.scrollX, y: window.scrollY }));
      const where = box ? `${Math.round(box.x)},${Math.round(box.y)} ${Math.round(box.width)}x${Math.round(box.height)}` : "no box";
      check(box !== null && scroll.x === 0 && scroll.y === 0 && box.x >= 0 && box.y >= 0 &&
        box.x + box.width <= 1280 && box.y + box.height <= 720 && box.height > 0,
        `the player's controls are inside 1280x720 without scrolling (${where})`);
      const play = await carol.$("#player .ap-control-bar .ap-playback-button");
      const pbox = play ? await play.boundingBox() : null;
      check(pbox !== null && pbox.y + pbox.height <= 720, "the play button is on screen");
      await carol.screenshot({ path: `${cfg.shots}/recording-controls.png` });
    }
  }
  await both(carol, "/no-such-page", "error", ["Not Found"]);

  // -------------------------------------------------------------- Grants
  const daveCtx = await newContext();
  const dave = await signIn(daveCtx, cfg.links.dave, "dave (approver)");
  await both(dave, "/grants", "grants", ["Requested", "Expires"]);
  await dave.goto(`${base}/grants?state=pending`);
  {
    const states = await dave.$$eval("#grants tbody tr[data-state]", (t) => t.map((r) => r.dataset.state));
    check(states.length === cfg.expect.pending && states.every((s) => s === "pending"), `the state filter shows the pending requests (${states.join(", ")})`);
    const ctxRow = await dave.$(`#context-${cfg.pending_grant}`);
    check(ctxRow !== null, "a pending request shows what to check before deciding");
    if (ctxRow) {
      const t = await ctxRow.innerText();
      check(t.includes("last sessions on") && t.includes(`#${cfg.grant}`), `the requester's sessions and other grants (${t})`);
    }
  }
  await dave.goto(`${base}/grants`);
  {
    const row = `#grant-${cfg.grant}`;
    const ports = await dave.innerText(`${row} td.ports`);
    const sources = await dave.innerText(`${row} td.sources`);
    check(ports === "none" && sources === "any", `ports and sources said explicitly (${ports} / ${sources})`);
    const exp = await dave.innerText(`${row} td.expires`);
    check(/\d{4}-\d\d-\d\d/.test(exp) && exp.includes("in "), `expiry absolute and time left (${exp})`);
    const denied = await dave.innerText(`#grant-${cfg.denied_grant} td.note`);
    check(denied.includes("WB-DENY-NOTE"), `the deny note (${denied})`);
    await Promise.all([dave.waitForURL(/\/grants/), dave.click(`#revoke-${cfg.grant}`)]);
    await dave.goto(`${base}/grants`);
    const st = await dave.innerText(`${row} td.state`);
    const by = await dave.innerText(`${row} td.decided`);
    check(st === "revoked" && by.includes("revoked by dave"), `revoked, and by whom (${st}; ${by})`);
  }
  check(problems.length === 0, `no CSP violations or script errors (${problems.join(" | ")})`);
} catch (e) {
  check(false, `script error: ${e.stack || e}`);
}
await browser.close();
if (failures.length) {
  log(`${failures.length} check(s) failed:`, failures.join("; "));
  process.exit(1);
}
log("all checks passed");
