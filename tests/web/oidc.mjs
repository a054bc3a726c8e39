// Drives headless Chromium through the console's single sign-on for
// tests/e2e_oidc.rs, against the real OpenID provider of
// tests/web/oidc-provider.mjs. The test passes a JSON file (argv[2]):
// chromium, base (the console), issuer (the provider), shots. Exits 0 when
// every check passed; otherwise prints what failed and exits 1. The audit
// events each step must leave are checked by the Rust test afterwards.
import { start } from "./harness.mjs";

const { cfg, base, failures, log, check, browser } = await start("[oidc-e2e]");

const cspViolations = [];
async function newContext() {
  // The console's certificate is self-signed and the provider's comes from
  // the test's CA: the browser is told to accept both.
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  ctx.on("page", (p) => {
    p.on("console", (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
    });
    p.on("pageerror", (e) => cspViolations.push(`page error: ${e.message}`));
  });
  return ctx;
}

/// From the console's /login, through the provider's form, as `login`
/// with `amr`; returns the page where it lands (the callback's answer or
/// the console) and the callback URL the provider sent the browser to.
async function ssoAs(login, amr, { hold = false } = {}) {
  const ctx = await newContext();
  const page = await ctx.newPage();
  let callback = null;
  page.on("request", (r) => {
    if (r.url().includes("/login/oidc/callback")) callback = callback || r.url();
  });
  if (hold) {
    // The provider shows the way back instead of taking it: the test
    // sends its own.
    await page.goto(`${cfg.issuer}/_test/next?mode=hold`);
  }
  await page.goto(`${base}/login`);
  await page.click("#sso");
  await page.waitForSelector("#login", { timeout: 30000 });
  await page.fill("#login", login);
  await page.fill("#amr", amr);
  if (hold) {
    await page.click("#go");
    await page.waitForSelector("#callback", { timeout: 30000 });
    callback = await page.getAttribute("#callback", "href");
    return { ctx, page, callback };
  }
  await Promise.all([
    page.waitForURL(/\/login\/oidc\/callback|\/(today|sessions)/, { timeout: 30000 }),
    page.click("#go"),
  ]);
  await page.waitForLoadState("load");
  return { ctx, page, callback };
}

async function bodyText(page) {
  return (await page.textContent("body")) || "";
}

try {
  // The sign-in page offers both ways.
  {
    const ctx = await newContext();
    const page = await ctx.newPage();
    const r = await page.goto(`${base}/login`);
    check(r.status() === 200, `/login answers 200 (${r.status()})`);
    const t = await bodyText(page);
    check(t.includes("Sign in with single sign-on"), "/login offers single sign-on");
    check(t.includes("ssh USER@BASTION web"), "/login tells of the one-time link");
    await page.screenshot({ path: `${cfg.shots}/login.png` });
    await ctx.close();
  }

  // alice signs in and lands on the console with her roles.
  let replay;
  {
    const { ctx, page, callback } = await ssoAs("alice", "pwd");
    await page.waitForURL(/\/(today|sessions)/, { timeout: 30000 });
    const who = (await page.textContent(".who")) || "";
    check(who.includes("alice"), `signed in as alice (${who.trim()})`);
    check(who.includes("auditor"), `alice's role from the policy (${who.trim()})`);
    check(callback && callback.includes("state="), "the provider came back with a state");
    replay = callback;
    const cookies = await ctx.cookies();
    const session = cookies.find((c) => c.name === "__Host-gatehouse");
    check(session && session.httpOnly && session.secure, "the console session cookie is HttpOnly, Secure");
    await page.screenshot({ path: `${cfg.shots}/signed-in.png` });
    // The same callback again, in this browser: refused.
    const r = await page.goto(replay);
    check(r.status() === 403, `a replayed callback is refused in the same browser (${r.status()})`);
    await ctx.close();
  }

  // The same callback from another browser: refused too.
  {
    const ctx = await newContext();
    const page = await ctx.newPage();
    const r = await page.goto(replay);
    check(r.status() === 403, `a replayed code is refused (${r.status()})`);
    check(!(await ctx.cookies()).some((c) => c.name === "__Host-gatehouse"), "no session for a replay");
    await ctx.close();
  }

  // mallory is the provider's user but no staff member.
  {
    const { ctx, page } = await ssoAs("mallory", "pwd");
    const t = await bodyText(page);
    check(t.includes("not a staff member"), `mallory is refused: ${t.slice(0, 200)}`);
    check(!(await ctx.cookies()).some((c) => c.name === "__Host-gatehouse"), "no session for mallory");
    const r = await page.goto(`${base}/sessions`);
    check(r.status() === 401, `mallory cannot see the console (${r.status()})`);
    await ctx.close();
  }

  // A tampered state.
  {
    const { ctx, page, callback } = await ssoAs("alice", "pwd", { hold: true });
    check(callback && callback.includes("state="), "the callback was held");
    const u = new URL(callback);
    u.searchParams.set("state", u.searchParams.get("state") + "x");
    const r = await page.goto(u.toString());
    check(r.status() === 403, `a tampered state is refused (${r.status()})`);
    check(!(await ctx.cookies()).some((c) => c.name === "__Host-gatehouse"), "no session for a tampered state");
    await ctx.close();
  }

  // A token for another audience, signed by the provider itself.
  {
    const ctx = await newContext();
    const page = await ctx.newPage();
    await page.goto(`${cfg.issuer}/_test/next?mode=wrong_audience`);
    await ctx.close();
    const s = await ssoAs("alice", "pwd");
    const t = await bodyText(s.page);
    check(t.includes("did not pass the checks"), `a wrong audience is refused: ${t.slice(0, 200)}`);
    check(!(await s.ctx.cookies()).some((c) => c.name === "__Host-gatehouse"), "no session for a wrong audience");
    await s.ctx.close();
  }

  // carol needs a second factor: a password alone is not enough...
  {
    const { ctx, page } = await ssoAs("carol", "pwd");
    const t = await bodyText(page);
    check(t.includes("second factor"), `carol without a second factor is refused: ${t.slice(0, 200)}`);
    await page.screenshot({ path: `${cfg.shots}/needs-factor.png` });
    await ctx.close();
  }
  // ...a provider that says it checked one lets her in.
  {
    const { ctx, page } = await ssoAs("carol", "pwd,otp");
    await page.waitForURL(/\/(today|sessions)/, { timeout: 30000 });
    const who = (await page.textContent(".who")) || "";
    check(who.includes("carol"), `carol with otp signs in (${who.trim()})`);
    check(!who.includes("auditor"), `carol has no auditor role (${who.trim()})`);
    await ctx.close();
  }
} catch (e) {
  failures.push(`exception: ${e.stack || e}`);
}

check(cspViolations.length === 0, `no CSP violations or page errors: ${JSON.stringify(cspViolations)}`);
await browser.close();
if (failures.length) {
  log(`${failures.length} failed:`);
  for (const f of failures) log(" -", f);
  process.exit(1);
}
log("all passed");
