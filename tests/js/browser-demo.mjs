// Drives the workload's demo page (/demo/) in Debian's Chromium with playwright-core.
//   node browser-demo.mjs <page url> <screenshot.png>
// stdout: {"ev":"ready","pod":...} once the page is connected and in its room; after a line on
// stdin (the last seq published), {"ev":"state",...} with what the page saw (window.wsfleetDemo)
// once it holds that seq, and a screenshot.
import { chromium } from "playwright-core";

const [url, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 980, height: 640 } });
  page.on("pageerror", (e) => console.log(JSON.stringify({ ev: "pageerror", message: String(e) })));
  await page.goto(url);
  await page.waitForFunction(() => window.wsfleetDemo && window.wsfleetDemo.connected
    && Object.keys(window.wsfleetDemo.rooms).length > 0, null, { timeout: 15000 });
  const first = await page.evaluate(() => window.wsfleetDemo.pods[0]);
  console.log(JSON.stringify({ ev: "ready", pod: first }));
  // the line on stdin is the last acknowledged seq: wait until the page holds it (or 15 s, and
  // the test's accounting names what is missing)
  const last = Number(String(await new Promise((resolve) => process.stdin.once("data", resolve))).trim());
  await page.waitForFunction(() => window.wsfleetDemo.connected, null, { timeout: 15000 });
  await page.waitForFunction((n) => window.wsfleetDemo.seqs.includes(n), last, { timeout: 15000 }).catch(() => {});
  const state = await page.evaluate(() => JSON.parse(JSON.stringify(window.wsfleetDemo)));
  await page.screenshot({ path: shot });
  console.log(JSON.stringify({ ev: "state", ...state }));
} finally {
  await browser.close();
}
process.exit(0);
