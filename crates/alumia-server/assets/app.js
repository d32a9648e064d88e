// Alumia browser pages. Plain JS, no build step; dispatches on <body data-page>.
// Talks only to the JSON API. Secrets never go into URLs or browser storage.
'use strict';

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);

  // The session lives in memory only (cookie + CSRF token from GET /auth/session).
  const state = { org: null, csrf: null, session: null, protectedPage: false };

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value == null || value === false) continue;
      if (key === 'text') node.textContent = value;
      else if (key === 'class') node.className = value;
      else node.setAttribute(key, value === true ? '' : value);
    }
    node.append(...children);
    return node;
  }

  // ---------- API ----------

  function retryAfterSeconds(res) {
    const raw = (res.headers.get('Retry-After') || '').trim();
    if (/^\d+$/.test(raw)) return parseInt(raw, 10);
    const at = Date.parse(raw);
    return Number.isNaN(at) ? null : Math.max(1, Math.ceil((at - Date.now()) / 1000));
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (state.org) headers['X-Alumia-Org'] = state.org;
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json';
      if (state.csrf) headers['X-CSRF-Token'] = state.csrf;
      if (body === undefined && method !== 'DELETE') body = {};
    }
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch {
      return { ok: false, status: 0, error: { code: 'NETWORK', message: 'Could not reach the server. Check your connection and try again.' } };
    }
    let json = null;
    try { json = await res.json(); } catch { /* empty or non-JSON body */ }
    if (res.ok && json?.success !== false) return { ok: true, status: res.status, data: json?.data ?? null };
    if (res.status === 401 && state.protectedPage) redirectToLogin();
    return {
      ok: false,
      status: res.status,
      error: json?.error || { code: `HTTP_${res.status}`, message: `Request failed (HTTP ${res.status}).` },
      retryAfter: retryAfterSeconds(res),
    };
  }

  const reasonOf = (r) => r.error?.reason;

  function tooManyText(seconds) {
    return seconds == null
      ? 'Too many attempts, try again later.'
      : `Too many attempts, try again in ${seconds} second${seconds === 1 ? '' : 's'}.`;
  }

  function errorText(r, fallback = 'Something went wrong. Please try again.') {
    if (r.status === 429) return tooManyText(r.retryAfter);
    return r.error?.message || fallback;
  }

  // ---------- UI helpers ----------

  function say(node, text, kind = 'info') {
    node.textContent = text || '';
    node.classList.toggle('error', kind === 'error');
    node.classList.toggle('success', kind === 'success');
  }

  function clearFieldErrors(form) {
    for (const slot of form.querySelectorAll('[data-error-for]')) slot.textContent = '';
    for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  }

  // Shows `fields` (name -> message) next to the inputs; returns messages with no matching slot.
  function showFieldErrors(form, fields) {
    clearFieldErrors(form);
    const unmatched = [];
    let first = null;
    for (const [name, message] of Object.entries(fields || {})) {
      const text = Array.isArray(message) ? message.join(' ') : String(message);
      const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
      if (!slot) { unmatched.push(text); continue; }
      slot.textContent = text;
      let input = form.elements.namedItem(name);
      if (input instanceof RadioNodeList) input = input[0];
      if (input instanceof HTMLElement) {
        input.setAttribute('aria-invalid', 'true');
        first ??= input;
      }
    }
    first?.focus();
    return unmatched;
  }

  async function busy(button, fn) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      return await fn();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }

  async function copyText(text, selectable) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      if (!selectable) return false;
      selectable.select();
      try { return document.execCommand('copy'); } catch { return false; }
    }
  }

  function formatDate(iso) {
    const d = new Date(iso);
    return d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
  }

  function localDateString(d) {
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  // ---------- Navigation ----------

  const orgFromPath = () => decodeURIComponent(location.pathname.split('/')[1] || '');
  const orgPath = (slug, rest) => `/${encodeURIComponent(slug)}/${rest}`;

  function redirectToLogin() {
    location.replace(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }

  // Only same-origin paths: a single leading "/", no "//", no backslash, no control chars/whitespace.
  function safeNext(raw) {
    if (typeof raw !== 'string' || !raw.startsWith('/') || raw.startsWith('//')) return null;
    if (raw.includes('\\') || /[\s\u0000-\u001f\u007f]/.test(raw)) return null;
    try {
      const url = new URL(raw, location.origin);
      return url.origin === location.origin ? url.pathname + url.search + url.hash : null;
    } catch {
      return null;
    }
  }

  function orgHome(orgs, currentOrgId) {
    const org = orgs?.find((o) => o.id === currentOrgId) || orgs?.[0];
    return org ? orgPath(org.slug, 'developers') : null;
  }

  // ---------- Session (developers + security pages) ----------

  function applySession(data) {
    state.session = data;
    state.csrf = data.csrfToken;
  }

  async function refreshSession() {
    const r = await api('GET', '/api/v1/auth/session');
    if (r.ok) applySession(r.data);
  }

  async function requireSession() {
    state.protectedPage = true;
    state.org = orgFromPath();
    const r = await api('GET', '/api/v1/auth/session');
    if (r.status === 401) return null; // api() already redirected to /login
    if (!r.ok) {
      say($('#loading'), errorText(r, 'Could not load your session.'), 'error');
      return null;
    }
    applySession(r.data);
    $('#org-slug').textContent = state.org;
    $('#user-email').textContent = r.data.user?.email || '';
    const signOut = $('#sign-out');
    signOut.addEventListener('click', async () => {
      await busy(signOut, () => api('POST', '/api/v1/auth/logout'));
      state.csrf = null;
      location.assign('/login');
    });
    $('#account').hidden = false;
    $('#loading').hidden = true;
    $('#content').hidden = false;
    return r.data;
  }

  // ---------- Step-up (shared) ----------

  // Asks for the password (or a TOTP code when enabled) and calls /auth/step-up.
  // Resolves true once stepped up, false if the user cancels.
  function promptStepUp() {
    const methods = state.session?.authMethods || {};
    const useTotp = !!methods.totp;
    return new Promise((resolve) => {
      const input = el('input', {
        id: 'stepup-input',
        type: useTotp ? 'text' : 'password',
        inputmode: useTotp ? 'numeric' : null,
        autocomplete: useTotp ? 'one-time-code' : 'current-password',
        spellcheck: 'false',
        required: true,
        'aria-describedby': 'stepup-msg',
      });
      const msg = el('p', { id: 'stepup-msg', class: 'msg', role: 'status', 'aria-live': 'polite' });
      const submit = el('button', { type: 'submit', text: 'Confirm' });
      const cancel = el('button', { type: 'button', class: 'secondary', text: 'Cancel' });
      const form = el('form', { novalidate: true },
        el('h2', { id: 'stepup-title', text: 'Confirm it’s you' }),
        el('p', { text: useTotp
          ? 'For your security, enter a code from your authenticator app to continue.'
          : 'For your security, enter your password to continue.' }),
        el('div', { class: 'field' },
          el('label', { for: 'stepup-input', text: useTotp ? 'Authenticator code' : 'Password' }), input),
        msg,
        el('div', { class: 'actions' }, submit, cancel));
      const dialog = el('dialog', { 'aria-labelledby': 'stepup-title' }, form);

      let settled = false;
      const finish = (ok) => {
        if (settled) return;
        settled = true;
        input.value = '';
        if (dialog.open) dialog.close();
        dialog.remove();
        resolve(ok);
      };
      dialog.addEventListener('close', () => finish(false)); // Esc
      cancel.addEventListener('click', () => finish(false));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        const value = useTotp ? input.value.replace(/\s+/g, '') : input.value;
        if (!value) {
          say(msg, useTotp ? 'Enter your code.' : 'Enter your password.', 'error');
          input.focus();
          return;
        }
        const r = await busy(submit, () =>
          api('POST', '/api/v1/auth/step-up', useTotp ? { totpCode: value } : { password: value }));
        if (r.ok) {
          await refreshSession(); // pick up the rotated session's CSRF token
          finish(true);
          return;
        }
        input.value = '';
        say(msg, reasonOf(r) === 'step_up_failed'
          ? (useTotp ? 'That code didn’t work. Try again.' : 'Wrong password. Try again.')
          : errorText(r), 'error');
        input.focus();
      });

      document.body.append(dialog);
      dialog.showModal();
      input.focus();
    });
  }

  // Runs `call`; on 403 step_up_required, prompts for step-up and retries once.
  async function withStepUp(call) {
    const r = await call();
    if (r.status !== 403 || reasonOf(r) !== 'step_up_required') return r;
    if (!(await promptStepUp())) return { ok: false, cancelled: true, status: 0, error: { message: 'Cancelled.' } };
    return call();
  }

  // ---------- Pages ----------

  async function setupPage() {
    const loading = $('#loading');
    const form = $('#setup-form');
    const msg = $('#form-msg');
    const status = await api('GET', '/api/v1/setup');
    if (!status.ok) {
      say(loading, errorText(status, 'Could not check the server status.'), 'error');
      return;
    }
    if (!status.data.required) {
      location.replace('/login');
      return;
    }
    const tokenRequired = !!status.data.tokenRequired;
    if (tokenRequired) $('#setup-token-field').hidden = false;
    else $('#setup-token-field').remove();
    loading.hidden = true;
    form.hidden = false;

    // Suggest a slug from the organization name until the user edits it.
    const slug = form.elements.orgSlug;
    let slugEdited = false;
    slug.addEventListener('input', () => { slugEdited = slug.value !== ''; });
    form.elements.orgName.addEventListener('input', (event) => {
      if (slugEdited) return;
      slug.value = event.target.value.normalize('NFKD').toLowerCase()
        .replace(/[\u0300-\u036f]/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
    });

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearFieldErrors(form);
      say(msg, '');
      const value = (name) => form.elements.namedItem(name)?.value.trim() ?? '';
      const body = {
        email: value('email'),
        password: form.elements.password.value,
        orgSlug: value('orgSlug'),
        orgName: value('orgName'),
      };
      if (value('name')) body.name = value('name');
      if (tokenRequired) body.setupToken = value('setupToken');

      const required = ['email', 'password', 'orgName', 'orgSlug', ...(tokenRequired ? ['setupToken'] : [])];
      const missing = Object.fromEntries(required.filter((k) => !body[k]).map((k) => [k, 'This field is required.']));
      if (Object.keys(missing).length) {
        showFieldErrors(form, missing);
        return;
      }

      const r = await busy(form.querySelector('[type=submit]'), () => api('POST', '/api/v1/setup', body));
      if (r.ok) {
        form.elements.password.value = '';
        location.assign(orgPath(r.data?.orgs?.[0]?.slug || body.orgSlug, 'developers'));
        return;
      }
      if (reasonOf(r) === 'already_set_up' || r.status === 409) {
        say(msg, 'Alumia is already set up. Taking you to sign in…');
        setTimeout(() => location.replace('/login'), 1500);
        return;
      }
      if (reasonOf(r) === 'invalid_setup_token') {
        showFieldErrors(form, { setupToken: 'The setup token is missing or wrong.' });
        return;
      }
      const fields = r.error?.details?.fields;
      if (fields) {
        const rest = showFieldErrors(form, fields);
        say(msg, rest.length ? rest.join(' ') : 'Please fix the highlighted fields.', 'error');
        return;
      }
      say(msg, errorText(r), 'error');
    });
  }

  async function loginPage() {
    const form = $('#login-form');
    const msg = $('#form-msg');
    const toggle = $('#toggle-recovery');
    const totp = form.elements.totpCode;
    const recovery = form.elements.recoveryCode;
    const next = safeNext(new URLSearchParams(location.search).get('next'));
    let factor = null; // null | 'totp' | 'recovery'

    const go = (data) => {
      const dest = next || orgHome(data.orgs, data.currentOrgId);
      if (dest) location.assign(dest);
      else say(msg, 'You’re signed in, but you aren’t a member of any organization yet.', 'error');
    };

    const setFactor = (f) => {
      factor = f;
      $('#totp-field').hidden = f !== 'totp';
      $('#recovery-field').hidden = f !== 'recovery';
      toggle.hidden = !f;
      toggle.textContent = f === 'recovery' ? 'Use an authenticator code instead' : 'Use a recovery code instead';
      if (f) (f === 'recovery' ? recovery : totp).focus();
    };
    toggle.addEventListener('click', () => setFactor(factor === 'recovery' ? 'totp' : 'recovery'));

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const body = { email: form.elements.email.value.trim(), password: form.elements.password.value };
      if (!body.email || !body.password) {
        say(msg, 'Enter your email and password.', 'error');
        (body.email ? form.elements.password : form.elements.email).focus();
        return;
      }
      if (factor === 'totp') body.totpCode = totp.value.replace(/\s+/g, '');
      if (factor === 'recovery') body.recoveryCode = recovery.value.trim();
      if (factor && !(body.totpCode || body.recoveryCode)) {
        say(msg, 'Enter your code to finish signing in.', 'error');
        (factor === 'recovery' ? recovery : totp).focus();
        return;
      }

      say(msg, '');
      const r = await busy(form.querySelector('[type=submit]'), () => api('POST', '/api/v1/auth/login', body));
      if (r.ok) {
        form.elements.password.value = '';
        totp.value = '';
        recovery.value = '';
        say(msg, 'Signed in. Redirecting…', 'success');
        go(r.data);
        return;
      }
      if (reasonOf(r) === 'second_factor_required') {
        if (!factor) setFactor('totp');
        say(msg, 'Enter the code from your authenticator app to finish signing in.');
        return;
      }
      totp.value = '';
      recovery.value = '';
      if (reasonOf(r) === 'invalid_credentials') say(msg, 'Wrong email, password or code.', 'error');
      else say(msg, errorText(r), 'error');
    });

    // Already signed in? Skip the form.
    const session = await api('GET', '/api/v1/auth/session');
    if (session.ok) go(session.data);
  }

  async function developersPage() {
    const session = await requireSession();
    if (!session) return;

    const pageMsg = $('#page-msg');
    const tbody = $('#keys-body');
    const loadMore = $('#load-more');
    const form = $('#create-key-form');
    const createMsg = $('#create-msg');
    const expires = form.elements.expiresAt;
    const box = $('#new-key');
    const keyValue = $('#new-key-value');
    let cursor = null;

    $('#security-link').href = orgPath(state.org, 'settings/security');
    if (!['owner', 'admin'].includes(session.role)) $('#scope-billing').remove();
    expires.min = localDateString(new Date());

    const updateEmpty = () => {
      const empty = tbody.rows.length === 0;
      $('#keys-empty').hidden = !empty;
      $('#keys-wrap').hidden = empty;
    };

    const dateCell = (iso, { empty = '—', expiry = false } = {}) => {
      if (!iso) return el('td', { text: empty });
      const expired = expiry && new Date(iso) <= new Date();
      const label = formatDate(iso);
      return el('td', {}, el('time', {
        datetime: iso, title: new Date(iso).toLocaleString(), text: expired ? `Expired ${label}` : label,
      }));
    };

    const keyRow = (key) => {
      const revoke = el('button', { type: 'button', class: 'danger small', text: 'Revoke', 'aria-label': `Revoke key ${key.name}` });
      const row = el('tr', {},
        el('th', { scope: 'row' }, key.name,
          ...(key.createdVia === 'device'
            ? [' ', el('span', { class: 'badge', title: 'Signed in from a terminal with alumia login --device', text: 'terminal' })]
            : [])),
        el('td', {}, el('code', { text: `${key.prefix}…` })),
        el('td', { text: key.scopes?.length ? key.scopes.join(', ') : '—' }),
        dateCell(key.createdAt),
        dateCell(key.lastUsedAt, { empty: 'Never' }),
        dateCell(key.expiresAt, { empty: 'Never', expiry: true }),
        el('td', {}, revoke));
      revoke.addEventListener('click', async () => {
        if (!confirm(`Revoke the key “${key.name}”? Anything using it will stop working immediately.`)) return;
        const r = await busy(revoke, () =>
          withStepUp(() => api('DELETE', `/api/v1/api-keys/${encodeURIComponent(key.id)}`)));
        if (r.cancelled) return;
        if (!r.ok) {
          say(pageMsg, errorText(r, 'Could not revoke the key.'), 'error');
          return;
        }
        row.remove();
        updateEmpty();
        say(pageMsg, `Revoked “${key.name}”.`, 'success');
        $('#keys-title').focus();
      });
      return row;
    };

    const loadKeys = async (reset) => {
      if (reset) cursor = null;
      const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
      const r = await api('GET', `/api/v1/api-keys${query}`);
      if (!r.ok) {
        say(pageMsg, errorText(r, 'Could not load API keys.'), 'error');
        return;
      }
      if (reset) tbody.replaceChildren();
      tbody.append(...r.data.items.map(keyRow));
      cursor = r.data.nextCursor;
      loadMore.hidden = !r.data.hasMore;
      updateEmpty();
    };
    loadMore.addEventListener('click', () => busy(loadMore, () => loadKeys(false)));

    const hideNewKey = () => {
      keyValue.value = '';
      $('#new-key-name').textContent = '';
      say($('#copy-msg'), '');
      box.hidden = true;
    };
    $('#copy-key').addEventListener('click', async () => {
      const ok = await copyText(keyValue.value, keyValue);
      say($('#copy-msg'), ok ? 'Copied to clipboard.' : 'Copy failed. Select the key and copy it manually.', ok ? 'success' : 'error');
    });
    $('#dismiss-key').addEventListener('click', () => {
      hideNewKey();
      $('#keys-title').focus();
    });

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearFieldErrors(form);
      say(createMsg, '');
      const body = {
        name: form.elements.name.value.trim(),
        scopes: [...form.querySelectorAll('input[name="scopes"]:checked')].map((i) => i.value),
      };
      const problems = {};
      if (!body.name) problems.name = 'Give the key a name.';
      if (!body.scopes.length) problems.scopes = 'Choose at least one scope.';
      if (expires.value) {
        const at = new Date(`${expires.value}T23:59:59`); // end of the chosen day, local time
        if (Number.isNaN(at.getTime()) || at <= new Date()) problems.expiresAt = 'Choose today or a later date.';
        else body.expiresAt = at.toISOString();
      }
      if (Object.keys(problems).length) {
        showFieldErrors(form, problems);
        return;
      }

      const r = await busy(form.querySelector('[type=submit]'), () =>
        withStepUp(() => api('POST', '/api/v1/api-keys', body)));
      if (r.cancelled) {
        say(createMsg, 'Key not created: confirmation was cancelled.');
        return;
      }
      if (!r.ok) {
        const fields = r.error?.details?.fields;
        const rest = fields ? showFieldErrors(form, fields) : [];
        say(createMsg, fields && !rest.length ? 'Please fix the highlighted fields.' : errorText(r, 'Could not create the key.'), 'error');
        return;
      }
      form.reset();
      $('#new-key-name').textContent = r.data.name;
      keyValue.value = r.data.key;
      say($('#copy-msg'), '');
      box.hidden = false;
      keyValue.focus();
      keyValue.select();
      loadKeys(true);
    });

    await loadKeys(true);
  }

  async function securityPage() {
    const session = await requireSession();
    if (!session) return;

    const msg = $('#totp-msg');
    const confirmForm = $('#totp-confirm-form');
    const recoveryBox = $('#recovery');
    const recoveryList = $('#recovery-list');
    let mode = session.authMethods?.totp ? 'on' : 'off'; // 'off' | 'enrolling' | 'on'

    $('#developers-link').href = orgPath(state.org, 'developers');

    const render = () => {
      $('#totp-status').textContent = mode === 'on' ? 'On' : 'Off';
      $('#totp-off').hidden = mode !== 'off';
      $('#totp-enrolling').hidden = mode !== 'enrolling';
      $('#totp-on').hidden = mode !== 'on';
    };
    const setTotpEnabled = (on) => {
      state.session.authMethods = { ...state.session.authMethods, totp: on };
      mode = on ? 'on' : 'off';
      render();
    };
    const clearEnrollment = () => {
      $('#totp-secret').textContent = '';
      $('#totp-url').textContent = '';
      confirmForm.reset();
      clearFieldErrors(confirmForm);
    };
    const hideCodes = () => {
      recoveryList.replaceChildren();
      say($('#codes-msg'), '');
      recoveryBox.hidden = true;
    };

    const enroll = $('#totp-enroll');
    enroll.addEventListener('click', async () => {
      say(msg, '');
      const r = await busy(enroll, () => withStepUp(() => api('POST', '/api/v1/auth/totp/enroll')));
      if (r.cancelled) return;
      if (!r.ok) {
        say(msg, errorText(r, 'Could not start setup.'), 'error');
        return;
      }
      $('#totp-secret').textContent = r.data.secret;
      $('#totp-url').textContent = r.data.otpauthUrl;
      mode = 'enrolling';
      render();
      confirmForm.elements.code.focus();
    });

    $('#totp-cancel').addEventListener('click', () => {
      clearEnrollment();
      mode = 'off';
      render();
      enroll.focus();
    });

    confirmForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearFieldErrors(confirmForm);
      say(msg, '');
      const code = confirmForm.elements.code.value.replace(/\s+/g, '');
      if (!code) {
        showFieldErrors(confirmForm, { code: 'Enter the code from your authenticator app.' });
        return;
      }
      const r = await busy(confirmForm.querySelector('[type=submit]'), () =>
        withStepUp(() => api('POST', '/api/v1/auth/totp/confirm', { code })));
      if (r.cancelled) return;
      if (!r.ok) {
        const fields = r.error?.details?.fields;
        if (fields && !showFieldErrors(confirmForm, fields).length) return;
        if (r.status === 429) say(msg, errorText(r), 'error');
        else showFieldErrors(confirmForm, { code: errorText(r, 'That code didn’t work. Try again.') });
        return;
      }
      clearEnrollment();
      setTotpEnabled(true);
      say(msg, 'Two-factor authentication is on.', 'success');
      recoveryList.replaceChildren(...(r.data.recoveryCodes || []).map((c) => el('li', { text: c })));
      recoveryBox.hidden = false;
      $('#recovery-title').focus();
    });

    $('#copy-codes').addEventListener('click', async () => {
      const codes = [...recoveryList.children].map((li) => li.textContent).join('\n');
      const ok = await copyText(codes);
      say($('#codes-msg'), ok ? 'Copied to clipboard.' : 'Copy failed. Select the codes and copy them manually.', ok ? 'success' : 'error');
    });
    $('#dismiss-codes').addEventListener('click', () => {
      hideCodes();
      $('#totp-title').focus();
    });

    const disable = $('#totp-disable');
    disable.addEventListener('click', async () => {
      if (!confirm('Turn off two-factor authentication? Signing in will only need your password.')) return;
      say(msg, '');
      const r = await busy(disable, () => withStepUp(() => api('DELETE', '/api/v1/auth/totp')));
      if (r.cancelled) return;
      if (!r.ok) {
        say(msg, errorText(r, 'Could not turn off two-factor authentication.'), 'error');
        return;
      }
      hideCodes();
      setTotpEnabled(false);
      say(msg, 'Two-factor authentication is off.', 'success');
      enroll.focus();
    });

    render();
  }

  // /device?user_code=…: approve or deny a device login (RFC 8628).
  async function devicePage() {
    state.protectedPage = true;
    const loading = $('#loading');
    const result = $('#result');
    const form = $('#code-form');
    const input = form.elements.userCode;
    const request = $('#request');
    const approve = $('#approve');
    const deny = $('#deny');
    const orgSelect = $('#org-select');
    let userCode = null; // the code being decided

    const session = await api('GET', '/api/v1/auth/session');
    if (session.status === 401) return; // api() already redirected to /login
    if (!session.ok) {
      say(loading, errorText(session, 'Could not load your session.'), 'error');
      return;
    }
    applySession(session.data);
    const orgs = session.data.orgs || [];
    const currentOrg = orgs.find((o) => o.id === session.data.currentOrgId) || orgs[0];
    state.org = currentOrg?.slug || null;
    $('#user-email').textContent = session.data.user?.email || '';
    const signOut = $('#sign-out');
    signOut.addEventListener('click', async () => {
      await busy(signOut, () => api('POST', '/api/v1/auth/logout'));
      state.csrf = null;
      location.assign('/login');
    });
    // The key is minted in the chosen organization (X-Alumia-Org on every call).
    if (orgs.length > 1) {
      orgSelect.replaceChildren(...orgs.map((o) =>
        el('option', { value: o.slug, text: `${o.name} (${o.slug})`, selected: o.slug === state.org })));
      orgSelect.hidden = false;
      orgSelect.addEventListener('change', () => { state.org = orgSelect.value; });
    } else {
      $('#org-name').textContent = currentOrg ? `${currentOrg.name} (${currentOrg.slug})` : '—';
    }
    $('#account').hidden = false;
    loading.hidden = true;
    $('#content').hidden = false;

    const displayCode = (raw) => {
      const code = raw.replace(/[\s-]+/g, '').toUpperCase();
      return code.length === 8 ? `${code.slice(0, 4)}-${code.slice(4)}` : code;
    };
    const setTime = (node, iso) => {
      node.dateTime = iso;
      node.textContent = new Date(iso).toLocaleString();
    };
    const finish = (text, kind) => {
      request.hidden = true;
      userCode = null;
      say(result, text, kind);
    };
    const decisionFailed = (r, fallback) => {
      if (reasonOf(r) === 'already_decided') finish('This sign-in was already approved or denied.', 'error');
      else if (reasonOf(r) === 'invalid_user_code') finish('This code has expired. Start again in your terminal.', 'error');
      else say(result, errorText(r, fallback), 'error');
    };

    const show = (data, code) => {
      userCode = code;
      $('#code-display').textContent = code;
      $('#client-name').textContent = data.clientName;
      $('#device-name').textContent = data.deviceName || '(no name given)';
      $('#request-ip').textContent = data.requestIp;
      setTime($('#requested-at'), data.requestedAt);
      setTime($('#expires-at'), data.expiresAt);
      for (const scope of ['mcp:read', 'mcp:write']) {
        const label = $(`#scope-${scope.replace(':', '-')}`);
        const requested = (data.requestedScopes || []).includes(scope);
        label.hidden = !requested;
        label.querySelector('input').checked = requested;
      }
      form.hidden = true;
      request.hidden = false;
      $('#request-title').focus();
    };

    const lookup = async () => {
      clearFieldErrors(form);
      say(result, '');
      const code = displayCode(input.value);
      if (!code) {
        showFieldErrors(form, { userCode: 'Enter the code shown in your terminal.' });
        return;
      }
      const r = await busy(form.querySelector('[type=submit]'), () =>
        api('GET', `/api/v1/auth/device/lookup?userCode=${encodeURIComponent(code)}`));
      if (r.ok) {
        show(r.data, code);
        return;
      }
      if (reasonOf(r) === 'invalid_user_code') {
        showFieldErrors(form, { userCode: 'No pending sign-in has this code. Check it against your terminal; codes expire after 15 minutes.' });
      } else if (reasonOf(r) === 'already_decided') {
        showFieldErrors(form, { userCode: 'This sign-in was already approved or denied.' });
      } else {
        say(result, errorText(r, 'Could not look up the code.'), 'error');
      }
    };
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      lookup();
    });

    // A stale session confirms first (the same prompt as minting a key).
    const stepUpFresh = () => {
      const until = Date.parse(state.session?.stepUpExpiresAt || '');
      return !Number.isNaN(until) && until > Date.now() + 5000;
    };
    approve.addEventListener('click', async () => {
      if (!userCode) return;
      say(result, '');
      if (!stepUpFresh() && !(await promptStepUp())) {
        say(result, 'Not approved: confirmation was cancelled.');
        return;
      }
      const grantScopes = [...request.querySelectorAll('input[name="grantScopes"]')]
        .filter((box) => !box.closest('label').hidden && box.checked)
        .map((box) => box.value);
      deny.disabled = true;
      const r = await busy(approve, () =>
        withStepUp(() => api('POST', '/api/v1/auth/device/approve', { userCode, grantScopes })));
      deny.disabled = false;
      if (r.cancelled) {
        say(result, 'Not approved: confirmation was cancelled.');
        return;
      }
      if (r.ok) finish('Approved. Go back to your terminal: it finishes signing in by itself.', 'success');
      else decisionFailed(r, 'Could not approve the sign-in.');
    });
    deny.addEventListener('click', async () => {
      if (!userCode) return;
      say(result, '');
      approve.disabled = true;
      const r = await busy(deny, () => api('POST', '/api/v1/auth/device/deny', { userCode }));
      approve.disabled = false;
      if (r.ok) finish('Denied. The device was not signed in.', 'success');
      else decisionFailed(r, 'Could not deny the sign-in.');
    });

    if (input.value.trim()) await lookup();
    else input.focus();
  }

  // /share/project/<token>: a shared project, read-only. Pan (drag), zoom
  // (wheel or buttons) and inspect (click a block); nothing else. Everything
  // is rendered with textContent: shared data is untrusted.
  function blockSummary(block) {
    const data = block.data || {};
    switch (data.type) {
      case 'markdown': return String(data.markdown || '');
      case 'metric': return `${data.label ?? ''}: ${data.value ?? ''}${data.unit ? ' ' + data.unit : ''}`;
      case 'table': return `${(data.rows || []).length} rows × ${(data.columns || []).length} columns`;
      case 'chart': return `${data.kind || 'chart'} chart, ${(data.series || []).length} series`;
      default: return data.type || block.type;
    }
  }

  async function sharePage() {
    const loading = $('#loading');
    const token = decodeURIComponent(location.pathname.split('/').pop() || '');
    const r = await api('GET', `/api/v1/share/project/${encodeURIComponent(token)}`);
    if (!r.ok) {
      say(loading, r.status === 404 ? 'This link does not work: it was revoked or never existed.' : errorText(r, 'Could not load the shared project.'), 'error');
      return;
    }
    const data = r.data;
    $('#project-emoji').textContent = data.project.emoji || '';
    $('#project-name').textContent = data.project.name;
    $('#project-description').textContent = data.project.description || '';
    const shared = $('#shared-at');
    shared.dateTime = data.sharedAt;
    shared.textContent = new Date(data.sharedAt).toLocaleString();

    const canvas = $('#canvas');
    const plane = $('#canvas-plane');
    const inspector = $('#inspector');
    const blocks = data.blocks || [];
    $('#canvas-empty').hidden = blocks.length > 0;
    for (const block of blocks) {
      const pos = block.position || { x: 0, y: 0, width: 240, height: 144 };
      const node = el('button', { type: 'button', class: 'canvas-block', 'data-block-id': block.id },
        el('strong', { text: block.title || block.type }),
        el('span', { class: 'hint', text: blockSummary(block) }));
      Object.assign(node.style, { left: `${pos.x}px`, top: `${pos.y}px`, width: `${pos.width}px`, height: `${pos.height}px` });
      node.addEventListener('click', () => {
        inspector.hidden = false;
        inspector.textContent = JSON.stringify({ type: block.type, title: block.title, data: block.data }, null, 2);
      });
      plane.append(node);
    }
    let view = { x: 0, y: 0, scale: 1 };
    const apply = () => {
      plane.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
      $('#zoom-reset').textContent = `${Math.round(view.scale * 100)}%`;
    };
    const zoom = (factor) => { view.scale = Math.min(4, Math.max(0.25, view.scale * factor)); apply(); };
    $('#zoom-in').addEventListener('click', () => zoom(1.25));
    $('#zoom-out').addEventListener('click', () => zoom(0.8));
    $('#zoom-reset').addEventListener('click', () => { view = { x: 0, y: 0, scale: 1 }; apply(); });
    canvas.addEventListener('wheel', (e) => { e.preventDefault(); zoom(e.deltaY < 0 ? 1.1 : 0.9); }, { passive: false });
    let drag = null;
    canvas.addEventListener('pointerdown', (e) => {
      if (e.target.closest('.canvas-block')) return;
      drag = { x: e.clientX - view.x, y: e.clientY - view.y };
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener('pointermove', (e) => {
      if (!drag) return;
      view.x = e.clientX - drag.x;
      view.y = e.clientY - drag.y;
      apply();
    });
    canvas.addEventListener('pointerup', () => { drag = null; });
    apply();

    const list = $('#sessions');
    if (!(data.sessions || []).length) list.append(el('p', { class: 'hint', text: 'No sessions.' }));
    for (const s of data.sessions || []) {
      const items = el('ol', { class: 'transcript' });
      for (const m of s.messages) {
        const text = m.parts.map((part) => (part.type === 'text' ? part.text : `[${part.type.replace(/^tool-/, 'tool ')}]`)).join('\n');
        items.append(el('li', { class: `msg-${m.role}` }, el('strong', { text: m.role === 'user' ? 'User' : (s.agentName || 'Agent') }), el('p', { text })));
      }
      list.append(el('details', { class: 'card', 'data-session-id': s.id },
        el('summary', { text: `${s.agentAvatar ? s.agentAvatar + ' ' : ''}${s.label || s.agentName || 'Session'} (${s.messages.length})` }),
        items));
    }
    loading.hidden = true;
    $('#content').hidden = false;
  }

  // /invite/project/<token>: a signed-in member of the org joins the project.
  async function invitePage() {
    state.protectedPage = true;
    const loading = $('#loading');
    const session = await api('GET', '/api/v1/auth/session');
    if (session.status === 401) return;
    if (!session.ok) {
      say(loading, errorText(session, 'Could not load your session.'), 'error');
      return;
    }
    applySession(session.data);
    const token = decodeURIComponent(location.pathname.split('/').pop() || '');
    const result = $('#result');
    $('#accept').addEventListener('click', async () => {
      const r = await busy($('#accept'), () => api('POST', `/api/v1/share/invite/${encodeURIComponent(token)}/accept`));
      if (r.ok) say(result, `You joined the project as ${r.data.role}.`, 'success');
      else say(result, r.status === 404 ? 'This invite does not work: it expired, was replaced, or is for another organization.' : errorText(r, 'Could not join the project.'), 'error');
    });
    loading.hidden = true;
    $('#content').hidden = false;
  }

  const pages = {
    setup: setupPage, login: loginPage, developers: developersPage, security: securityPage, device: devicePage,
    share: sharePage, invite: invitePage,
  };
  const run = pages[document.body.dataset.page];
  if (run) {
    run().catch((err) => {
      console.error(err);
      const target = $('#loading:not([hidden])') || $('#form-msg') || $('#page-msg');
      if (target) say(target, 'Something went wrong. Please reload the page.', 'error');
    });
  }
})();
