// Drive a built page in headless Chromium the way a user does: pick files in its <input type=file>, wait until
// the page has classified them, print what the page computed (JSON on stdout). Used by tests/export/test_web.py.
// usage: node classify.mjs URL CHROMIUM [--screenshot PNG] FILE...
import { chromium } from "playwright-core";

const [url, executablePath, ...rest] = process.argv.slice(2);
let screenshot = null;
if (rest[0] === "--screenshot") { screenshot = rest[1]; rest.splice(0, 2); }
const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 820, height: 900 } });
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(url);
  await page.waitForSelector("body[data-state=ready]", { timeout: 60000 }).catch((e) => {
    throw new Error(`page never became ready: ${logs.join(" | ")} ${e.message}`);
  });
  await page.setInputFiles("#files", rest);
  await page.waitForSelector("body[data-state=done]", { timeout: 120000 });
  const results = await page.evaluate(() => globalThis.cifarResults);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: false });
  const origin = new URL(url).origin;
  const offsite = requests.filter((r) => !r.startsWith(origin) && !r.startsWith("blob:") && !r.startsWith("data:"));
  console.log(JSON.stringify({ results, offsite, logs }));
} finally {
  await browser.close();
}
