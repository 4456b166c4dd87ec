// whatsapp-api-js (npm) verifying and parsing the same webhooks in-process, no server:
// `JSON.parse` of the raw body plus `post()`, which checks X-Hub-Signature-256 and calls the
// `message` / `status` callback. Mean of a timed loop, best of 5 rounds, one JSON line per
// payload. Run through run.sh.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { WhatsAppAPI } from "whatsapp-api-js";

const SECRET = "bench-app-secret-0123456789abcdef";

for (const path of process.argv.slice(2)) {
  const raw = readFileSync(path, "utf8");
  const name = basename(path, ".json");
  if (name.startsWith("waha")) continue; // a Meta Cloud API library
  const header = "sha256=" + createHmac("sha256", SECRET).update(raw).digest("hex");
  const wa = new WhatsAppAPI({ token: "unused", appSecret: SECRET, v: "v24.0" });
  let calls = 0;
  let last = null;
  wa.on.message = (args) => { calls += 1; last = args; };
  wa.on.status = (args) => { calls += 1; last = args; };
  const handle = () => wa.post(JSON.parse(raw), raw, header);

  let refused = false;
  try { await wa.post(JSON.parse(raw), raw, "sha256=" + "0".repeat(64)); } catch { refused = true; }
  if (!refused) throw new Error("wrong signature accepted");
  await handle();
  if (calls !== 1) throw new Error(`${name}: no callback (${calls})`);
  const items = calls;

  let started = performance.now();
  let probe = 0;
  while (performance.now() - started < 100) { await handle(); probe += 1; }
  const n = Math.max(probe * 3, 10);
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) await handle();
    best = Math.min(best, ((performance.now() - t) * 1000) / n);
  }
  if (last === null) throw new Error("nothing parsed");
  console.log(JSON.stringify({ handler: "whatsapp-api-js", payload: name, us_per_webhook: best, items_parsed: items }));
}
