// Parses mermaid diagrams with mermaid itself, in Debian's Chromium (playwright-core): the
// same library GitHub renders them with. Test-only.
//   node mermaid-check.mjs < diagrams.json        ([{"where": ..., "text": ...}, ...])
// stdout: one JSON line per diagram: {"where", "ok", "type"?, "error"?}
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const diagrams = JSON.parse(readFileSync(0, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  await page.addScriptTag({ path: require.resolve("mermaid/dist/mermaid.min.js") });
  for (const d of diagrams) {
    const result = await page.evaluate(async (text) => {
      try {
        const parsed = await window.mermaid.parse(text);
        return { ok: true, type: parsed.diagramType };
      } catch (e) {
        return { ok: false, error: String(e && e.message ? e.message : e) };
      }
    }, d.text);
    console.log(JSON.stringify({ where: d.where, ...result }));
  }
} finally {
  await browser.close();
}
