// Drives the dashboard of a running `tally serve` in headless Chromium (Debian's package,
// through puppeteer-core: nothing is downloaded) and prints what it shows as JSON, for
// crates/server/tests/it/dashboard.rs to compare with the API.
//
// Usage: node check.mjs BASE_URL KEY SCREENSHOT_DIR [TOKEN]
// With a `dft_` TOKEN for two websites, it also signs in with it and switches between them.
import puppeteer from "puppeteer-core";

const [base, key, shots, token] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});
const problems = [];
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1100 });
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warn") problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("requestfailed", (r) => problems.push("request failed: " + r.url()));

  const ready = async (after) => {
    await page.waitForFunction((n) => Number(document.body.dataset.ready || 0) > n, { timeout: 20000 }, after);
    return page.evaluate(() => Number(document.body.dataset.ready));
  };
  const shown = () => page.evaluate(() => ({
    visitors: document.querySelector('[data-kpi="Visitors"] .value').textContent,
    sessions: document.querySelector('[data-kpi="Sessions"] .value').textContent,
    countries: [...document.querySelectorAll('[data-panel="locations"] tr.row')].map((tr) =>
      [tr.querySelector("td.label span").textContent, tr.querySelectorAll("td")[1].textContent]),
    chips: [...document.querySelectorAll("#filters .chip span")].map((s) => s.textContent),
    search: location.search,
    chartDrawn: !!document.querySelector("#chart canvas"),
    mapShaded: [...document.querySelectorAll(".map path.has")].map((p) => p.dataset.country).sort(),
    mapOutlines: document.querySelectorAll(".map path").length,
  }));

  // Signing in through the form.
  const t0 = Date.now();
  await page.goto(base + "/?range=all", { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#key", { visible: true });
  await page.type("#key", key);
  await page.click("#signin-form button[type=submit]");
  let n = await ready(0);
  const firstViewMs = Date.now() - t0;
  const before = await shown();
  await page.screenshot({ path: shots + "/dashboard.png", fullPage: true });

  // A click on the first country adds its filter and refreshes every panel.
  await page.click('[data-panel="locations"] tr.row');
  n = await ready(n);
  const after = await shown();
  await page.screenshot({ path: shots + "/dashboard-filtered.png", fullPage: true });

  // Removing the chip, then clicking a country on the map, filters by that country.
  await page.click("#filters .chip button");
  n = await ready(n);
  const last = before.mapShaded[before.mapShaded.length - 1];
  await page.click(`.map path[data-country="${last}"]`);
  n = await ready(n);
  const mapClick = (await shown()).chips;

  // The same view, bookmarked, in a dark theme, signed in by the `#key=` link.
  const page2 = await browser.newPage();
  page2.on("pageerror", (e) => problems.push(String(e)));
  await page2.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "dark" }]);
  await page2.setViewport({ width: 1280, height: 1100 });
  await page2.goto(base + "/" + after.search + "#key=" + key, { waitUntil: "domcontentloaded" });
  await page2.waitForFunction(() => Number(document.body.dataset.ready || 0) > 0, { timeout: 20000 });
  const bookmarked = await page2.evaluate(() => ({
    visitors: document.querySelector('[data-kpi="Visitors"] .value').textContent,
    hash: location.hash,
  }));
  await page2.screenshot({ path: shots + "/dashboard-dark.png", fullPage: true });

  // An account token: its websites in the picker, each shown in turn.
  let account = null;
  if (token) {
    const context = await browser.createBrowserContext();
    const page3 = await context.newPage();
    page3.on("pageerror", (e) => problems.push(String(e)));
    page3.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
    await page3.goto(base + "/?range=all#key=" + token, { waitUntil: "domcontentloaded" });
    await page3.waitForFunction(() => Number(document.body.dataset.ready || 0) > 0, { timeout: 20000 });
    const state = () => page3.evaluate(() => ({
      site: document.getElementById("site-picker").value,
      options: [...document.querySelectorAll("#site-picker option")].map((o) => o.value),
      pickerShown: !document.getElementById("site-picker").hidden,
      visitors: document.querySelector('[data-kpi="Visitors"] .value').textContent,
      ready: Number(document.body.dataset.ready),
    }));
    const first = await state();
    const other = first.options.find((o) => o !== first.site);
    await page3.select("#site-picker", other);
    await page3.waitForFunction((n, s) => Number(document.body.dataset.ready) > n && new URLSearchParams(location.search).get("site") === s,
      { timeout: 20000 }, first.ready, other);
    const second = await state();
    await page3.screenshot({ path: shots + "/dashboard-token.png" });
    account = { first, second };
    await context.close();
  }

  console.log(JSON.stringify({ before, after, mapClick, bookmarked, account, firstViewMs, problems }));
} finally {
  await browser.close();
}
