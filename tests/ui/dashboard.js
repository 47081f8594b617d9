// End-to-end check of the web dashboard in headless Chromium (run by scripts/test).
// usage: node tests/ui/dashboard.js BASE_URL USERNAME PASSWORD [SCREENSHOT_DIR]
// Logs in, visits every view, creates an API key, and fails on any console error,
// failed request or missing content.
const { chromium } = require("playwright-core");

(async () => {
  const [base, username, password, shots] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
  const problems = [];
  const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`); });
  const shot = async (name) => { if (shots) await page.screenshot({ path: `${shots}/${name}.png` }); };
  try {
    await page.goto(base + "/");
    await page.fill("input[name=username]", username);
    await page.fill("input[name=password]", password);
    await page.click("button[type=submit]");
    await page.waitForSelector(".cards", { timeout: 10000 });
    await shot("overview");
    for (const view of ["members", "keys", "audit", "metrics"]) {
      await page.click(`a[href="#${view}"]`);
      await page.waitForSelector("#view h2", { timeout: 10000 });
      const heading = await page.textContent("#view h2");
      if (!heading) problems.push(`view ${view} rendered no heading`);
      if (await page.$("#view .error")) problems.push(`view ${view} shows an error: ${await page.textContent("#view .error")}`);
      await shot(view);
    }
    await page.click('a[href="#keys"]');
    await page.fill("input[name=name]", "ui test key");
    await page.click("#new-key button");
    await page.waitForSelector(".key", { timeout: 10000 });
    const key = await page.textContent(".key");
    if (!key.startsWith("cbk_")) problems.push("the created key is not shown: " + key);
  } catch (error) {
    problems.push("step failed: " + error.message);
  }
  await browser.close();
  if (problems.length) {
    console.error("dashboard check FAILED:\n" + problems.join("\n"));
    process.exit(1);
  }
  console.log("dashboard check passed");
})();
