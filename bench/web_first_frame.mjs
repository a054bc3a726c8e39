// Time to first frame of a recording in headless Chromium, for
// bench/web_console.py: signs in with the link, opens the recording's
// page, starts the player and waits for the first event's text on its
// screen. Prints one JSON line. Uses tests/web's playwright-core.
// Usage: node bench/web_first_frame.mjs BASE LINK RECORDING_ID NEEDLE
import { createRequire } from "node:module";
const require = createRequire(new URL("../tests/web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const [base, link, id, needle] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  await page.goto(link);
  // The link's page has one button that POSTs the link back.
  await Promise.all([page.waitForURL(/\/(today|sessions)$/), page.click("#sign-in")]);
  const t0 = Date.now();
  await page.goto(`${base}/recordings/${id}`);
  await page.waitForSelector("#player .ap-wrapper");
  const ready = Date.now() - t0;
  const t1 = Date.now();
  await page.evaluate(() => window.gatehousePlayer.play());
  await page.waitForFunction((n) => {
    const t = document.querySelector("#player .ap-term");
    return t && t.textContent.includes(n);
  }, needle, { timeout: 60000 });
  const first = Date.now() - t1;
  console.log(JSON.stringify({ page_to_player_ms: ready, play_to_first_frame_ms: first, total_ms: ready + first }));
} finally {
  await browser.close();
}
