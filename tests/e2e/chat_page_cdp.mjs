// chat_page_cdp.mjs - drives headless Chromium over the DevTools protocol
// (node's built-in WebSocket, no npm package) for tests/e2e/chat_page.sh.
//   node --experimental-websocket chat_page_cdp.mjs URL SCREENSHOT.png
// Prints one JSON line: {"models", "users", "replies", "stats", "screenshot": bytes}
// after: loading URL (the page sends its ?q= message on load), waiting for
// that reply to finish, then typing a second message into the page's text
// box and submitting it, waiting for its reply, and capturing a screenshot.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, shot] = process.argv.slice(2);
const deadline = Date.now() + Number(process.env.CDP_TIMEOUT_MS || 30000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const profile = mkdtempSync(join(tmpdir(), 'preft-chromium-'));
const chrome = spawn(process.env.CHROMIUM || 'chromium', [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
  '--remote-debugging-port=0', `--user-data-dir=${profile}`, '--window-size=1000,700', 'about:blank',
], { stdio: ['ignore', 'ignore', 'pipe'] });
let stderr = '';
let exited = false;
chrome.on('exit', () => { exited = true; });
// kills chromium, waits for it to go, removes its profile
async function cleanup() {
  chrome.kill('SIGKILL');
  for (let i = 0; i < 100 && !exited; i++) await sleep(20);
  try {
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  } catch (e) {
    console.error(`chat_page_cdp: cannot remove ${profile}: ${e.message}`);
  }
}
function fail(msg) {
  console.error(`chat_page_cdp: ${msg}`);
  if (stderr) console.error(stderr.split('\n').filter((l) => !/dbus|Fontconfig/.test(l)).slice(-10).join('\n'));
  cleanup().then(() => process.exit(1));
}

let portKnown = false;
const port = await new Promise((resolve) => {
  chrome.stderr.on('data', (d) => {
    stderr += d;
    const m = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(stderr);
    if (m && !portKnown) {
      portKnown = true;
      resolve(m[1]);
    }
  });
  chrome.on('exit', (code) => { if (!portKnown) fail(`chromium exited (${code}) before its DevTools port was known`); });
  setTimeout(() => fail('chromium did not report its DevTools port'), deadline - Date.now());
});
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const page = targets.find((t) => t.type === 'page');
if (!page) fail('no page target');
const ws = new WebSocket(page.webSocketDebuggerUrl);
await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('websocket')); });
let nextId = 1;
const pending = new Map();
ws.onmessage = (ev) => {
  const msg = JSON.parse(ev.data);
  if (msg.id && pending.has(msg.id)) {
    pending.get(msg.id)(msg);
    pending.delete(msg.id);
  }
};
function send(method, params = {}) {
  const id = nextId++;
  ws.send(JSON.stringify({ id, method, params }));
  return new Promise((resolve) => pending.set(id, (m) => (m.error ? fail(`${method}: ${m.error.message}`) : resolve(m.result))));
}
async function evaluate(expr) {
  const r = await send('Runtime.evaluate', { expression: expr, returnByValue: true, awaitPromise: true });
  if (r.exceptionDetails) fail(`evaluate ${expr}: ${r.exceptionDetails.text}`);
  return r.result.value;
}
// waits until expr is truthy; returns its value
async function until(expr, what) {
  for (;;) {
    const v = await evaluate(expr);
    if (v) return v;
    if (Date.now() > deadline) fail(`timed out waiting for ${what}; the page shows: ${await evaluate('document.body.innerText')}`);
    await sleep(50);
  }
}

await send('Page.enable');
await send('Runtime.enable');
await send('Emulation.setDeviceMetricsOverride', { width: 1000, height: 700, deviceScaleFactor: 1, mobile: false });
await send('Page.navigate', { url });
const reply = (n) => `(() => { const m = document.querySelectorAll('.msg.assistant[data-done], .msg.error[data-done]')[${n}];
  return m && { cls: m.className, text: m.firstChild ? m.firstChild.textContent : '', meta: (m.querySelector('.meta') || {}).textContent || '' }; })()`;
const first = await until(reply(0), 'the first reply');
const models = await evaluate(`[...document.querySelectorAll('#model option')].map((o) => o.value)`);
// a second turn typed into the page and sent with its form (CDP_SECOND='' skips it)
const secondText = process.env.CDP_SECOND ?? 'And the army?';
let second = null;
if (secondText) {
  await evaluate(`document.getElementById('input').value = ${JSON.stringify(secondText)};
    document.getElementById('form').requestSubmit(); true`);
  second = await until(reply(1), 'the second reply');
}
const users = await evaluate(`[...document.querySelectorAll('.msg.user')].map((m) => m.textContent)`);
const png = Buffer.from((await send('Page.captureScreenshot', { format: 'png' })).data, 'base64');
writeFileSync(shot, png);
console.log(JSON.stringify({ models, users, replies: [first, second], stats: await evaluate(`document.getElementById('stats').textContent`), screenshot: png.length }));
ws.close();
await cleanup();
process.exit(0);
