// `make test-browser`: opens report.html in a real headless Chromium (Debian's package, driven by
// playwright-core) and checks that it renders, that every number on it equals report.json's,
// that it loads nothing from anywhere and logs no error; then saves a screenshot for the docs.
//
// usage: node check_report.mjs REPORT_HTML REPORT_JSON SCREENSHOT_PNG

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const [htmlPath, jsonPath, screenshot] = process.argv.slice(2);
if (!htmlPath || !jsonPath || !screenshot) {
  console.error("usage: node check_report.mjs REPORT_HTML REPORT_JSON SCREENSHOT_PNG");
  process.exit(2);
}
const report = JSON.parse(readFileSync(jsonPath, "utf8"));
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? "PASS" : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};
const num = (text) => Number(String(text).replace(/[,\s]/g, ""));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // The flags that work in containers without a GPU or a user namespace; no network chatter.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const consoleErrors = [];
  const external = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => consoleErrors.push(`pageerror: ${e.message}`));
  page.on("request", (r) => {
    if (!r.url().startsWith("file:") && !r.url().startsWith("data:")) external.push(r.url());
  });
  await page.goto(pathToFileURL(resolve(htmlPath)).href, { waitUntil: "load" });

  check((await page.locator("h1").textContent()) === "Import report", "the page renders its heading");
  check((await page.locator("#run-id").textContent()) === report.run_id, "the run id is report.json's");

  // Totals: each number on the page is report.json's.
  for (const field of [
    "users_in",
    "rejected_before_submission",
    "submitted",
    "inserted",
    "updated",
    "failed_at_auth0",
    "unknown",
    "chunks",
  ]) {
    const shown = num(await page.locator(`[data-field="${field}"]`).first().textContent());
    check(shown === report[field], `${field}: page ${shown}, report.json ${report[field]}`);
  }
  const jobs = report.jobs.filter((j) => j.job_id !== "").length;
  check(num(await page.locator('[data-field="jobs"]').textContent()) === jobs, `jobs started: ${jobs}`);
  const holds = await page.locator('[data-field="conservation_holds"]').textContent();
  check(holds === (report.conservation_holds ? "holds" : "does not hold"), `conservation ${holds}`);

  // The verdict names how many users were not imported.
  const notImported = report.rejected_before_submission + report.failed_at_auth0 + report.unknown;
  const verdict = page.locator("#verdict");
  const outcome = await verdict.getAttribute("data-outcome");
  const verdictText = await verdict.textContent();
  check(
    notImported === 0 ? outcome === "completed" : verdictText.includes(notImported.toLocaleString("en-US")),
    `verdict "${verdictText}" (${outcome})`,
  );

  // A refusal and users in doubt are said at the top, with report.json's number.
  check((await page.locator("#refused").count()) === (report.refused ? 1 : 0), "a refusal only when the report has one");
  const doubt = page.locator("#in-doubt");
  check(
    report.in_doubt
      ? num((await doubt.textContent()).split(" ")[0]) === report.in_doubt
      : (await doubt.count()) === 0,
    `users in doubt: ${report.in_doubt ?? 0}`,
  );

  // Reasons: each code's count.
  for (const [codes, stage] of [
    [report.rejected_by_code, "split"],
    [report.failed_by_code, "Auth0"],
  ]) {
    for (const [code, n] of Object.entries(codes)) {
      const cell = page.locator(`#reasons [data-code="${code} (${stage})"]`);
      check(num(await cell.textContent()) === n, `reason ${code} (${stage}) = ${n}`);
    }
  }

  // Every chunk: one row each, its counts report.json's.
  const rows = page.locator("#chunk-table tr[data-seq]");
  check((await rows.count()) === Math.min(report.jobs.length, 2000), `${report.jobs.length} chunk rows`);
  for (let i = 0; i < Math.min(report.jobs.length, 2000); i++) {
    const j = report.jobs[i];
    const row = rows.nth(i);
    const got = {};
    for (const col of ["users", "inserted", "updated", "failed", "unknown"]) {
      got[col] = num(await row.locator(`[data-col="${col}"]`).textContent());
    }
    const same = ["users", "inserted", "updated", "failed", "unknown"].every((c) => got[c] === j[c]);
    check(
      (await row.getAttribute("data-seq")) === String(j.seq) && same,
      `chunk ${j.seq}: ${JSON.stringify(got)}`,
    );
  }

  // The timeline: one bar per job that ran, each drawn with a width, inside the chart.
  const timed = report.jobs.filter((j) => j.submitted_at_ms && j.finished_at_ms).length;
  const bars = page.locator("#timeline rect.job");
  check((await bars.count()) === timed, `${timed} jobs on the timeline`);
  const svgBox = await page.locator("#timeline svg").boundingBox();
  let drawn = 0;
  for (let i = 0; i < (await bars.count()); i++) {
    const b = await bars.nth(i).boundingBox();
    if (b && b.width > 0 && b.height > 0 && b.x >= svgBox.x && b.x + b.width <= svgBox.x + svgBox.width + 1) drawn++;
  }
  check(drawn === timed, `every bar is drawn inside the timeline (${drawn}/${timed})`);
  const lanes = await page.locator("#timeline svg > text").evaluateAll((ts) => ts.filter((t) => t.textContent.startsWith("slot")).length);
  check(lanes >= 1 && lanes <= 2, `jobs on ${lanes} slot lane(s)`);

  // Sections the report has, and the steps for its failure classes.
  check(await page.locator("#next-steps li").count() > 0 || notImported === 0, "what to do next is listed");
  if (report.failed_by_code?.DUPLICATED_USER) {
    check((await page.locator("#next-steps").textContent()).includes("upsert=true"), "duplicates: re-drop with upsert");
  }
  check((await page.locator("#canary").count()) === (report.canary ? 1 : 0), "a canary section only when the report has one");
  check(
    (await page.locator("#reconciliation").count()) === (report.reconciliation ? 1 : 0),
    "a reconciliation section only when the report has one",
  );

  check(external.length === 0, `nothing loaded from elsewhere ${JSON.stringify(external)}`);
  check(consoleErrors.length === 0, `no console errors or warnings ${JSON.stringify(consoleErrors)}`);

  // The docs show the page down to the chunk table (the sample of failures below is long).
  const end = await page.locator("#chunks").boundingBox();
  await page.screenshot({
    path: screenshot,
    fullPage: true,
    clip: { x: 0, y: 0, width: 1200, height: Math.ceil(end.y + end.height + 24) },
  });
  console.log(`screenshot: ${screenshot}`);
} finally {
  await browser.close();
}
console.log(failures.length ? `${failures.length} failed` : "all passed");
process.exit(failures.length ? 1 : 0);
