// What every browser test of tests/web starts with: the JSON config the
// Rust test passed (argv[2]), a check() that logs each result under `tag`
// and collects failures, and headless Chromium launched from the path the
// config names. Playwright gives every launch a fresh, temporary
// --user-data-dir of its own (it refuses the flag), so no profile state
// leaks between runs.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

export async function start(tag) {
  const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
  const failures = [];
  const log = (...a) => console.log(tag, ...a);
  const check = (ok, what) => {
    if (ok) log("ok:", what);
    else {
      log("FAIL:", what);
      failures.push(what);
    }
  };
  const browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return { cfg, base: cfg.base, failures, log, check, browser };
}
