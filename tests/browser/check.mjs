// Real-browser end-to-end check of the Alumia dashboard pages (and the
// device-login approval page, driven with the CLI's form posts from Node).
//
//   node check.mjs <main base url> <step-up base url>
//
// Both servers must be fresh (no user yet). The main one runs with default
// settings; the step-up one with `[auth] step_up_window_secs = 1`, so that a
// short wait lets the step-up prompt be exercised. `./run` starts both.
//
// Drives Debian's chromium through playwright-core like a user, and exits
// non-zero with a message (and a screenshot path) on the first failed check.

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [mainBase, stepUpBase] = process.argv.slice(2).map((u) => u?.replace(/\/+$/, ''));
if (!mainBase || !stepUpBase) {
  console.error('usage: node check.mjs <main base url> <step-up base url>');
  process.exit(2);
}

const EMAIL = 'ada@example.com';
const PASSWORD = 'correct horse battery staple';
const ORG_SLUG = 'acme';
const ORG_NAME = 'Acme Inc.';
const KEY_RE = /^alm_test_[0-9a-f]{48}$/;
const TIMEOUT_MS = 15_000;

class CheckFailed extends Error {}
const fail = (message) => { throw new CheckFailed(message); };
const check = (cond, message) => { if (!cond) fail(message); };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const pathOf = (url) => { const u = new URL(url); return u.pathname + u.search; };

// ---------- what the pages did besides what we asked ----------

const problems = [];      // fail the run at the end (or at the next checkpoint)
const consoleSeen = [];   // every console error/warning, printed on failure
const dialogsSeen = [];

// A fetch that gets a 4xx is logged by Chromium as "Failed to load resource";
// the pages get 401 (no session) and 403 (step-up required) by design.
// Chromium also asks for /favicon.ico on its own; the pages declare none (404).
function expectedResourceError(msg) {
  const m = /^Failed to load resource: the server responded with a status of (\d{3})\b/.exec(msg.text());
  if (!m) return false;
  const path = msg.location()?.url ? new URL(msg.location().url).pathname : '';
  // A revoked share link is a 404 the share page expects and explains.
  const revokedShare = m[1] === '404' && path.startsWith('/api/v1/share/project/');
  return m[1] === '401' || m[1] === '403' || (m[1] === '404' && path === '/favicon.ico') || revokedShare;
}

function watch(page, label) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error' && msg.type() !== 'warning') return;
    const where = msg.location()?.url ? ` (${msg.location().url})` : '';
    const line = `[${label}] console.${msg.type()}: ${msg.text()}${where}`;
    consoleSeen.push(line);
    if (/content[- ]security[- ]policy/i.test(msg.text())) problems.push(`CSP violation: ${line}`);
    else if (msg.type() === 'error' && !expectedResourceError(msg)) problems.push(`console error: ${line}`);
  });
  page.on('pageerror', (err) => problems.push(`[${label}] uncaught error in page: ${err.stack || err.message}`));
  page.on('response', (res) => {
    if (res.status() >= 500) problems.push(`[${label}] HTTP ${res.status()} from ${res.request().method()} ${res.url()}`);
  });
  page.on('dialog', async (dialog) => {
    dialogsSeen.push({ type: dialog.type(), message: dialog.message() });
    if (dialog.type() === 'confirm') await dialog.accept();
    else {
      problems.push(`[${label}] unexpected ${dialog.type()} dialog: ${dialog.message()}`);
      await dialog.dismiss();
    }
  });
}

function assertNoProblems(where) {
  if (problems.length) fail(`${where}: the page reported problems:\n  ${problems.join('\n  ')}`);
}

// ---------- steps ----------

let current = null; // the page to screenshot on failure
let stepNo = 0;
async function step(name, fn) {
  stepNo += 1;
  const t0 = Date.now();
  process.stdout.write(`${stepNo}. ${name} … `);
  await fn();
  assertNoProblems(name);
  console.log(`ok (${Date.now() - t0} ms)`);
}

async function text(page, selector) {
  return (await page.locator(selector).textContent())?.trim() ?? '';
}

// Waits until `selector` shows `expected` (string: exact, RegExp: match).
async function expectText(page, selector, expected, what) {
  const ok = (t) => (expected instanceof RegExp ? expected.test(t) : t === expected);
  try {
    await page.waitForFunction(
      ([sel, src, flags, exact]) => {
        const t = document.querySelector(sel)?.textContent?.trim() ?? '';
        return src === null ? t === exact : new RegExp(src, flags).test(t);
      },
      [selector, expected instanceof RegExp ? expected.source : null,
        expected instanceof RegExp ? expected.flags : '', expected instanceof RegExp ? null : expected],
      { timeout: TIMEOUT_MS },
    );
  } catch {
    const got = await text(page, selector).catch(() => '<missing>');
    if (!ok(got)) fail(`${what}: expected ${selector} to show ${expected}, got ${JSON.stringify(got)}`);
  }
}

async function expectPath(page, path, what) {
  try {
    await page.waitForURL((u) => u.pathname + u.search === path, { timeout: TIMEOUT_MS });
  } catch {
    fail(`${what}: expected to be on ${path}, but the page is at ${pathOf(page.url())}`);
  }
}

// The full `key` must be nowhere in the DOM (markup or input values), the URL or storage.
async function keyVisibleAnywhere(page, key) {
  return page.evaluate((k) => {
    const inDom = document.documentElement.outerHTML.includes(k);
    const inInputs = [...document.querySelectorAll('input, textarea')].some((i) => i.value.includes(k));
    const inStorage = [localStorage, sessionStorage].some((s) =>
      Object.keys(s).some((name) => name.includes(k) || (s.getItem(name) || '').includes(k)));
    const inUrl = location.href.includes(k);
    return { inDom, inInputs, inStorage, inUrl, any: inDom || inInputs || inStorage || inUrl };
  }, key);
}

async function useKey(base, key) {
  const res = await fetch(`${base}/api/v1/models`, { headers: { Authorization: `Bearer ${key}`, Accept: 'application/json' } });
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  return { status: res.status, body };
}

// / -> /setup, fill the form, land on /<slug>/developers signed in.
async function setUp(page, base) {
  const res = await page.goto(`${base}/`);
  check(res, 'GET / gave no response');
  const from = res.request().redirectedFrom();
  check(from && pathOf(from.url()) === '/', `GET / did not redirect (final URL ${page.url()})`);
  check(pathOf(page.url()) === '/setup', `GET / redirected to ${pathOf(page.url())}, expected /setup`);
  const csp = res.headers()['content-security-policy'] || '';
  check(/script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp),
    `/setup has no strict Content-Security-Policy (got ${JSON.stringify(csp)})`);

  const form = page.locator('#setup-form');
  await form.waitFor({ state: 'visible' });
  await page.fill('#name', 'Ada Lovelace');
  await page.fill('#email', EMAIL);
  await page.fill('#password', PASSWORD);
  await page.fill('#orgName', ORG_NAME);
  const suggested = await page.inputValue('#orgSlug');
  check(suggested === 'acme-inc', `the slug suggested from "${ORG_NAME}" is ${JSON.stringify(suggested)}, expected "acme-inc"`);
  await page.fill('#orgSlug', ORG_SLUG);
  await page.getByRole('button', { name: 'Create account' }).click();

  await expectPath(page, `/${ORG_SLUG}/developers`, 'after setup');
  await expectText(page, '#user-email', EMAIL, 'after setup');
  await expectText(page, '#org-slug', ORG_SLUG, 'after setup');
  check(await page.locator('#content').isVisible(), 'the developers page content is not shown after setup');
  check(await page.locator('#keys-empty').isVisible(), 'a new organization should show "No API keys yet."');
}

// Submits the create-key form and returns what appeared first:
// 'created' (the new-key box) or 'step-up' (the step-up dialog).
async function submitCreateKey(page, name) {
  await page.fill('#key-name', name);
  check(await page.isChecked('input[name="scopes"][value="models:read"]'), 'models:read is not checked by default');
  await page.getByRole('button', { name: 'Create key' }).click();
  return waitForCreatedOrStepUp(page, `creating key "${name}"`);
}

async function waitForCreatedOrStepUp(page, what) {
  const created = page.locator('#new-key:not([hidden])');
  const stepUp = page.locator('dialog[open]');
  try {
    await created.or(stepUp).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  } catch {
    fail(`${what}: neither the new key nor a step-up prompt appeared (create-msg: ${JSON.stringify(await text(page, '#create-msg'))})`);
  }
  return (await stepUp.count()) ? 'step-up' : 'created';
}

// Reads the once-shown key, checks the table, dismisses it; returns the key.
async function takeNewKey(page, name) {
  await expectText(page, '#new-key-name', name, 'new key box');
  const key = await page.inputValue('#new-key-value');
  check(KEY_RE.test(key), `the new key ${JSON.stringify(key)} does not look like alm_test_<48 hex>`);

  const prefix = key.slice(0, 12);
  const row = page.locator('#keys-body tr', { has: page.locator('th', { hasText: name }) });
  await row.first().waitFor({ timeout: TIMEOUT_MS }).catch(() => fail(`the keys table does not list "${name}"`));
  check(await row.count() === 1, `the keys table lists "${name}" ${await row.count()} times`);
  const shown = await row.locator('code').textContent();
  check(shown === `${prefix}…`, `the table shows ${JSON.stringify(shown)} for "${name}", expected ${JSON.stringify(prefix + '…')}`);
  const rowText = await row.textContent();
  check(!rowText.includes(key), 'the keys table shows the full key');
  check(/models:read/.test(rowText), `the row for "${name}" does not list the models:read scope: ${rowText}`);

  await page.getByRole('button', { name: 'Done, I’ve saved it' }).click();
  await page.locator('#new-key').waitFor({ state: 'hidden' });
  const seen = await keyVisibleAnywhere(page, key);
  check(!seen.any, `the key is still in the page after dismissing it: ${JSON.stringify(seen)}`);
  return key;
}

// Answers an open step-up dialog with `password`.
async function answerStepUp(page, password) {
  const dialog = page.locator('dialog[open]');
  await expectText(page, 'dialog[open] h2', 'Confirm it’s you', 'step-up prompt');
  await dialog.getByLabel('Password').fill(password);
  await dialog.getByRole('button', { name: 'Confirm' }).click();
}

async function revokeKey(page, name) {
  const row = page.locator('#keys-body tr', { has: page.locator('th', { hasText: name }) });
  const before = dialogsSeen.length;
  await page.getByRole('button', { name: `Revoke key ${name}` }).click();
  return { row, confirmed: () => dialogsSeen.slice(before).find((d) => d.type === 'confirm') };
}

// ---------- device login (RFC 8628) ----------

const GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// What `alumia login --device` sends: form posts to the code and token endpoints.
async function oauthPost(base, path, params) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams(params).toString(),
  });
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  return { status: res.status, body };
}

async function startDevice(base, scope, deviceName) {
  const r = await oauthPost(base, '/api/v1/auth/device/code', { client_id: 'alumia-cli', scope, device_name: deviceName });
  check(r.status === 200 && /^[A-Z]{4}-[A-Z]{4}$/.test(r.body?.user_code || ''),
    `POST /api/v1/auth/device/code gave ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

function pollDevice(base, deviceCode) {
  return oauthPost(base, '/api/v1/auth/device/token', { grant_type: GRANT, device_code: deviceCode, client_id: 'alumia-cli' });
}

// Waits for the device page to show the request for `userCode`.
async function expectDeviceRequest(page, userCode, deviceName) {
  await page.locator('#request').waitFor({ state: 'visible' }).catch(async () =>
    fail(`the device page did not show the request (result: ${JSON.stringify(await text(page, '#result'))}, ` +
      `code error: ${JSON.stringify(await text(page, '#user-code-error'))})`));
  await expectText(page, '#code-display', userCode, 'device page code');
  await expectText(page, '#client-name', 'Alumia CLI', 'device page client');
  await expectText(page, '#device-name', deviceName, 'device page device name');
  await expectText(page, '#request-ip', '127.0.0.1', 'device page requesting IP');
  check((await text(page, '#requested-at')).length > 0, 'the device page shows no request time');
}

// ---------- main ----------

let browser = null;
let exitCode = 0;
const started = Date.now();

try {
  // playwright-core refuses a --user-data-dir in args: launch() always gives
  // Chromium a new empty one of its own (a temp dir it deletes on close).
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    timeout: 60_000,
  });
  console.log(`chromium ${browser.version()}; main ${mainBase}, step-up ${stepUpBase}`);

  const mainCtx = await browser.newContext();
  mainCtx.setDefaultTimeout(TIMEOUT_MS);
  const page = await mainCtx.newPage();
  watch(page, 'main');
  current = page;
  let key = null;

  await step('GET / redirects to /setup; setup form signs in on /acme/developers', async () => {
    await setUp(page, mainBase);
  });

  await step('create key "laptop": shown once as alm_test_…, dismissed, listed by prefix', async () => {
    const first = await submitCreateKey(page, 'laptop');
    check(first === 'created', 'creating a key right after setup asked for step-up (setup should count as a fresh sign-in)');
    key = await takeNewKey(page, 'laptop');
    // Shown once: a reload lists the key but never shows it again.
    await page.reload();
    await expectText(page, '#user-email', EMAIL, 'after reload');
    await page.locator('#keys-body th', { hasText: 'laptop' }).waitFor();
    check(await page.locator('#new-key').isHidden(), 'the new-key box is shown again after a reload');
    const seen = await keyVisibleAnywhere(page, key);
    check(!seen.any, `the key is in the page after a reload: ${JSON.stringify(seen)}`);
  });

  await step('the key works: GET /api/v1/models with Bearer → 200', async () => {
    const r = await useKey(mainBase, key);
    check(r.status === 200, `GET /api/v1/models with the new key gave ${r.status}: ${JSON.stringify(r.body)}`);
    check(Array.isArray(r.body?.data?.items) && r.body.data.items.length > 0,
      `GET /api/v1/models returned no models: ${JSON.stringify(r.body)}`);
  });

  await step('sign out → /login; /acme/developers → /login?next=…; sign in → back on /acme/developers', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expectPath(page, '/login', 'after sign out');
    await page.goto(`${mainBase}/${ORG_SLUG}/developers`);
    const next = `/login?next=${encodeURIComponent(`/${ORG_SLUG}/developers`)}`;
    await expectPath(page, next, 'visiting the developers page signed out');
    await page.fill('#email', EMAIL);
    await page.fill('#password', 'not the password!');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expectText(page, '#form-msg', 'Wrong email, password or code.', 'sign in with a wrong password');
    check(pathOf(page.url()) === next, `a failed sign-in left ${next} for ${pathOf(page.url())}`);
    await page.fill('#password', PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expectPath(page, `/${ORG_SLUG}/developers`, 'after signing in with ?next');
    await expectText(page, '#user-email', EMAIL, 'after signing in again');
    await page.locator('#keys-body th', { hasText: 'laptop' }).waitFor();
  });

  await step('step-up: after the 1 s window, minting asks for the password (cancel, wrong, right), then mints; revoke after the window', async () => {
    const ctx = await browser.newContext();
    ctx.setDefaultTimeout(TIMEOUT_MS);
    const sp = await ctx.newPage();
    watch(sp, 'step-up');
    current = sp;
    await setUp(sp, stepUpBase);
    const session = await sp.evaluate(() => fetch('/api/v1/auth/session', { headers: { Accept: 'application/json' } }).then((r) => r.json()));
    const window = Date.parse(session?.data?.stepUpExpiresAt) - Date.now();
    check(Number.isFinite(window) && window <= 1500,
      `the step-up server's window is not ~1 s (stepUpExpiresAt ${session?.data?.stepUpExpiresAt}); is its config applied?`);
    await sleep(Math.max(0, window) + 500);

    // Cancel: nothing is created.
    check(await submitCreateKey(sp, 'ci') === 'step-up', 'creating a key after the step-up window did not ask for step-up');
    await sp.locator('dialog[open]').getByRole('button', { name: 'Cancel' }).click();
    await expectText(sp, '#create-msg', 'Key not created: confirmation was cancelled.', 'after cancelling step-up');
    check(await sp.locator('dialog').count() === 0, 'the step-up dialog is still in the page after Cancel');
    check(await sp.locator('#keys-empty').isVisible(), 'a key was listed although step-up was cancelled');

    // Wrong password, then the right one: the key is minted.
    check(await submitCreateKey(sp, 'ci') === 'step-up', 'the second attempt did not ask for step-up');
    await answerStepUp(sp, 'definitely wrong pw');
    await expectText(sp, '#stepup-msg', 'Wrong password. Try again.', 'step-up with a wrong password');
    check(await sp.inputValue('#stepup-input') === '', 'the step-up password field was not cleared after a failure');
    await answerStepUp(sp, PASSWORD);
    await sp.locator('dialog').waitFor({ state: 'detached' }).catch(async () =>
      fail(`the step-up dialog stayed open after the right password (stepup-msg: ${JSON.stringify(await text(sp, '#stepup-msg'))})`));
    await sp.locator('#new-key').waitFor({ state: 'visible' }).catch(async () =>
      fail(`the key was not created after a successful step-up (create-msg: ${JSON.stringify(await text(sp, '#create-msg'))})`));
    const stepKey = await takeNewKey(sp, 'ci');
    const r = await useKey(stepUpBase, stepKey);
    check(r.status === 200, `the key minted after step-up gave ${r.status} on /api/v1/models`);

    // Revoking with a stale step-up: the API asks a fresh step-up for minting
    // only (revocation is not gated), but the page copes either way.
    await sleep(1500);
    const { row, confirmed } = await revokeKey(sp, 'ci');
    await Promise.race([
      row.waitFor({ state: 'detached' }),
      sp.locator('dialog[open]').waitFor({ state: 'visible' }).then(() => answerStepUp(sp, PASSWORD)),
    ]).catch(() => {});
    await row.waitFor({ state: 'detached' }).catch(async () =>
      fail(`"ci" is still listed after revoking (page-msg: ${JSON.stringify(await text(sp, '#page-msg'))})`));
    check(confirmed(), 'no confirm dialog before revoking');
    const after = await useKey(stepUpBase, stepKey);
    check(after.status === 401, `the revoked key gave ${after.status}, expected 401`);
    await ctx.close();
    current = page;
  });

  await step('device login: /device → /login?next=… → back; compare, untick mcp:write, approve → the CLI poll gets a key', async () => {
    const issued = await startDevice(mainBase, 'mcp:read mcp:write', 'ci runner');
    const pending = await pollDevice(mainBase, issued.device_code);
    check(pending.status === 400 && pending.body?.error === 'authorization_pending',
      `polling before approval gave ${pending.status}: ${JSON.stringify(pending.body)}`);
    check(issued.verification_uri_complete === `${mainBase}/device?user_code=${issued.user_code}`,
      `verification_uri_complete is ${issued.verification_uri_complete}`);

    // Signed out: the page sends the browser to sign in, then back.
    const ctx = await browser.newContext();
    ctx.setDefaultTimeout(TIMEOUT_MS);
    const dp = await ctx.newPage();
    watch(dp, 'device');
    current = dp;
    await dp.goto(issued.verification_uri_complete);
    await expectPath(dp, `/login?next=${encodeURIComponent(`/device?user_code=${issued.user_code}`)}`, 'the device page signed out');
    await dp.fill('#email', EMAIL);
    await dp.fill('#password', PASSWORD);
    await dp.getByRole('button', { name: 'Sign in' }).click();
    await expectPath(dp, `/device?user_code=${issued.user_code}`, 'after signing in from the device page');
    await expectDeviceRequest(dp, issued.user_code, 'ci runner');
    await expectText(dp, '#org-name', `${ORG_NAME} (${ORG_SLUG})`, 'device page target org');
    check(await dp.isChecked('#scope-mcp-read input') && await dp.isChecked('#scope-mcp-write input'),
      'the requested MCP scopes are not shown ticked');
    await dp.uncheck('#scope-mcp-write input');
    await dp.getByRole('button', { name: 'Approve' }).click();
    await expectText(dp, '#result', /^Approved\./, 'after approving');
    check(await dp.locator('#request').isHidden(), 'the request is still shown after approving');

    const token = await pollDevice(mainBase, issued.device_code);
    check(token.status === 200 && KEY_RE.test(token.body?.access_token || ''),
      `the poll after approval gave ${token.status}: ${JSON.stringify(token.body)}`);
    check(token.body.scope === 'terminal models:read mcp:read', `the device key has scope ${JSON.stringify(token.body.scope)}`);
    const r = await useKey(mainBase, token.body.access_token);
    check(r.status === 200, `the device key gave ${r.status} on /api/v1/models`);
    const again = await pollDevice(mainBase, issued.device_code);
    check(again.status === 400 && again.body?.error === 'invalid_grant', `a second poll gave ${JSON.stringify(again.body)}`);
    const seen = await keyVisibleAnywhere(dp, token.body.access_token);
    check(!seen.any, `the device key reached the browser: ${JSON.stringify(seen)}`);

    // The developers page lists it like any key.
    await dp.goto(`${mainBase}/${ORG_SLUG}/developers`);
    await dp.locator('#keys-body th', { hasText: 'Alumia CLI (ci runner)' }).waitFor()
      .catch(() => fail('the developers page does not list "Alumia CLI (ci runner)"'));
    const badge = dp.locator('#keys-body th', { hasText: 'Alumia CLI (ci runner)' }).locator('.badge');
    check((await badge.textContent()) === 'terminal', 'the device key is not marked as a terminal key');
    check(await dp.locator('#keys-body th', { hasText: 'laptop' }).locator('.badge').count() === 0,
      'a dashboard key is marked as a terminal key');

    // The device key revokes itself (any principal of its user may), leaving "laptop" alone.
    const me = await fetch(`${mainBase}/api/v1/me`, { headers: { Authorization: `Bearer ${token.body.access_token}` } }).then((x) => x.json());
    const keyId = me?.data?.principal?.keyId;
    const del = await fetch(`${mainBase}/api/v1/api-keys/${keyId}`, { method: 'DELETE', headers: { Authorization: `Bearer ${token.body.access_token}` } });
    check(del.status === 200, `revoking the device key gave ${del.status}`);
    check((await useKey(mainBase, token.body.access_token)).status === 401, 'the revoked device key still works');

    // A code typed by hand (any case, no dash) and denied.
    const denied = await startDevice(mainBase, '', 'stranger');
    await dp.goto(`${mainBase}/device`);
    await dp.locator('#code-form').waitFor({ state: 'visible' });
    await dp.fill('#user-code', denied.user_code.replace('-', '').toLowerCase());
    await dp.getByRole('button', { name: 'Continue' }).click();
    await expectDeviceRequest(dp, denied.user_code, 'stranger');
    check(await dp.locator('#scope-mcp-read').isHidden(), 'an MCP scope is offered although the device did not ask for it');
    await dp.getByRole('button', { name: 'Deny' }).click();
    await expectText(dp, '#result', /^Denied\./, 'after denying');
    const refused = await pollDevice(mainBase, denied.device_code);
    check(refused.status === 400 && refused.body?.error === 'access_denied', `the poll after denial gave ${JSON.stringify(refused.body)}`);
    await ctx.close();
    current = page;
  });

  await step('device login with a stale session: Approve asks for the password first, then approves', async () => {
    const ctx = await browser.newContext();
    ctx.setDefaultTimeout(TIMEOUT_MS);
    const dp = await ctx.newPage();
    watch(dp, 'device-step-up');
    current = dp;
    const issued = await startDevice(stepUpBase, 'mcp:read', 'old laptop');
    await dp.goto(issued.verification_uri_complete);
    await expectPath(dp, `/login?next=${encodeURIComponent(`/device?user_code=${issued.user_code}`)}`, 'the device page signed out');
    await dp.fill('#email', EMAIL);
    await dp.fill('#password', PASSWORD);
    await dp.getByRole('button', { name: 'Sign in' }).click();
    await expectDeviceRequest(dp, issued.user_code, 'old laptop');
    await sleep(1500); // the step-up server's window is 1 s
    await dp.getByRole('button', { name: 'Approve' }).click();
    await answerStepUp(dp, PASSWORD);
    await expectText(dp, '#result', /^Approved\./, 'after stepping up and approving');
    const token = await pollDevice(stepUpBase, issued.device_code);
    check(token.status === 200 && token.body?.scope === 'terminal models:read mcp:read',
      `the poll after a stepped-up approval gave ${token.status}: ${JSON.stringify(token.body)}`);
    await ctx.close();
    current = page;
  });

  await step('share a project: a signed-out browser sees the read-only canvas, pans, zooms and inspects; a revoked link shows the 404 text', async () => {
    const api = (method, path, body) => fetch(`${mainBase}${path}`, {
      method,
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
    const project = await api('POST', '/api/v1/projects', { name: 'Launch plan', emoji: '🚀' });
    check(project.status === 201, `creating a project gave ${project.status}`);
    const pid = project.body.data.id;
    const block = await api('POST', `/api/v1/projects/${pid}/blocks`,
      { type: 'data', title: 'Milestones', data: { type: 'markdown', markdown: '<img src=x onerror=alert(1)> ship it' } });
    check(block.status === 201, `creating a block gave ${block.status}`);
    // Sharing is browser-only: the signed-in page's session (fresh from setup) makes the link.
    const shared = await page.evaluate(async (id) => {
      const s = await fetch('/api/v1/auth/session').then((r) => r.json());
      const r = await fetch(`/api/v1/projects/${id}/share`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.data.csrfToken },
        body: '{}',
      });
      return { status: r.status, body: await r.json() };
    }, pid);
    check(shared.status === 200, `POST /share from the browser gave ${shared.status}: ${JSON.stringify(shared.body)}`);
    const shareUrl = shared.body.data.shareUrl;

    const ctx = await browser.newContext();
    ctx.setDefaultTimeout(TIMEOUT_MS);
    const sp = await ctx.newPage();
    watch(sp, 'share');
    current = sp;
    await sp.goto(shareUrl);
    await expectText(sp, '#project-name', 'Launch plan', 'shared project name');
    const blocks = sp.locator('.canvas-block');
    check(await blocks.count() === 1, `the shared canvas shows ${await blocks.count()} blocks`);
    check((await blocks.first().textContent()).includes('Milestones'), 'the block title is not shown');
    check(await sp.locator('img').count() === 0, 'block data was rendered as HTML');
    await blocks.first().click();
    check((await text(sp, '#inspector')).includes('ship it'), 'inspecting the block shows no data');
    await sp.getByRole('button', { name: 'Zoom in' }).click();
    await expectText(sp, '#zoom-reset', '125%', 'after zooming in');
    check(await sp.locator('input, textarea, [contenteditable=true]').count() === 0, 'the shared view offers an editor');

    const revoked = await page.evaluate(async (id) => {
      const s = await fetch('/api/v1/auth/session').then((r) => r.json());
      const r = await fetch(`/api/v1/projects/${id}/share`, { method: 'DELETE', headers: { 'X-CSRF-Token': s.data.csrfToken } });
      return r.status;
    }, pid);
    check(revoked === 200, `revoking the link gave ${revoked}`);
    await sp.reload();
    await expectText(sp, '#loading', /revoked or never existed/, 'after revocation');
    await ctx.close();
    current = page;
  });

  await step('revoke "laptop" (confirm dialog accepted) → gone from the table; the key gets 401', async () => {
    const { row, confirmed } = await revokeKey(page, 'laptop');
    await row.waitFor({ state: 'detached' }).catch(async () =>
      fail(`"laptop" is still listed after revoking (page-msg: ${JSON.stringify(await text(page, '#page-msg'))}; step-up shown: ${await page.locator('dialog[open]').count() > 0})`));
    const dialog = confirmed();
    check(dialog && dialog.message.includes('laptop'), `no confirm dialog naming "laptop" before revoking (${JSON.stringify(dialogsSeen)})`);
    await expectText(page, '#page-msg', 'Revoked “laptop”.', 'after revoking');
    check(await page.locator('#keys-empty').isVisible(), '"No API keys yet." is not shown after revoking the only key');
    const r = await useKey(mainBase, key);
    check(r.status === 401, `the revoked key gave ${r.status} on /api/v1/models, expected 401`);
    await page.reload();
    await expectText(page, '#user-email', EMAIL, 'after reload');
    await page.locator('#keys-empty').waitFor({ state: 'visible' })
      .catch(() => fail('the revoked key is listed again after a reload'));
  });

  await step('no CSP violations, uncaught errors or unexpected console errors during the run', async () => {
    assertNoProblems('whole run');
  });

  console.log(`\nbrowser e2e: all ${stepNo} checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (err) {
  exitCode = 1;
  console.log('FAILED');
  console.error(`\nbrowser e2e FAILED: ${err instanceof CheckFailed ? err.message : err.stack || err}`);
  if (problems.length) console.error(`\nproblems reported by the pages:\n  ${problems.join('\n  ')}`);
  if (consoleSeen.length) console.error(`\nconsole errors/warnings seen:\n  ${consoleSeen.join('\n  ')}`);
  if (current && !current.isClosed()) {
    const shot = join(tmpdir(), `alumia-browser-failure-${Date.now()}.png`);
    try {
      await current.screenshot({ path: shot, fullPage: true });
      console.error(`\npage at failure: ${current.url()}\nscreenshot: ${shot}`);
    } catch (e) {
      console.error(`\n(could not take a screenshot: ${e.message})`);
    }
  }
} finally {
  await browser?.close().catch(() => {});
}
process.exit(exitCode);
