// The session and every call to the public API.
//
// The access token lives in this module's memory only. The refresh token
// never reaches page scripts: the server keeps it in an HttpOnly cookie
// (`X-MedicalPro-Client: web`) sent only to /api/v1/auth/refresh. A session
// idle for IDLE_MINUTES ends here (and on the server); nothing is written
// to the browser's storage.

export const IDLE_MINUTES = 30;
const WEB = { 'X-MedicalPro-Client': 'web' };
const CSRF = { ...WEB, 'X-MedicalPro-CSRF': '1' };

let access = null;
let expiresAt = 0;
let refreshing = null;
let lastActivity = Date.now();
let onEnd = () => {};
export const session = { user: null, clinic: null };

/** `ended(reason)` is called when the session ends without the user asking. */
export function onSessionEnd(ended) { onEnd = ended; }

for (const type of ['keydown', 'pointerdown', 'input']) {
  addEventListener(type, () => { lastActivity = Date.now(); }, { passive: true, capture: true });
}
setInterval(() => {
  if (access && Date.now() - lastActivity > IDLE_MINUTES * 60000) {
    logout().then(() => onEnd('idle'));
  }
}, 15000);

function keep(data) {
  access = data.accessToken;
  expiresAt = Date.now() + (data.expiresIn - 30) * 1000;
  if (data.user) session.user = data.user;
  if (data.clinic !== undefined) session.clinic = data.clinic;
  lastActivity = Date.now();
}

async function send(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch {
    return { ok: false, status: 0, error: { code: 'network', message: '' } };
  }
  let json = null;
  if (response.status !== 204) {
    try { json = await response.json(); } catch { json = null; }
  }
  const result = { ok: response.ok, status: response.status };
  if (response.ok) {
    result.data = json ? json.data : null;
    result.pagination = json ? json.pagination : null;
  } else {
    result.error = (json && json.error) || { code: 'internal', message: '' };
    result.retryAfter = Number(response.headers.get('Retry-After')) || null;
  }
  return result;
}

/** Exchanges the refresh cookie for an access token (one at a time). */
export function refresh() {
  if (!refreshing) {
    refreshing = send('POST', '/auth/refresh', undefined, CSRF).then((r) => {
      refreshing = null;
      if (r.ok) keep(r.data); else access = null;
      return r.ok;
    });
  }
  return refreshing;
}

export async function login(email, password) {
  const r = await send('POST', '/auth/login', { email, password }, WEB);
  if (r.ok) keep(r.data);
  return r;
}

export async function register(body) {
  const r = await send('POST', '/auth/register', body, WEB);
  if (r.ok) keep(r.data);
  return r;
}

/** Ends the session on the server (revokes the refresh family, clears the cookie). */
export async function logout() {
  access = null;
  session.user = null;
  session.clinic = null;
  await send('DELETE', '/auth/refresh', undefined, CSRF);
}

export function signedIn() { return access !== null; }

/** A call with the access token, refreshed first when about to expire. */
export async function api(method, path, body) {
  if (!access) return { ok: false, status: 401, error: { code: 'unauthorized', message: '' } };
  if (Date.now() > expiresAt) await refresh();
  let r = await send(method, path, body, { Authorization: `Bearer ${access}` });
  if (r.status === 401 && access && (await refresh())) {
    r = await send(method, path, body, { Authorization: `Bearer ${access}` });
  }
  if (r.status === 401) { access = null; onEnd('expired'); }
  return r;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);

/** Query string from an object, skipping empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Downloads an API answer as a file, without putting anything in the page URL. */
export async function download(path, filename) {
  if (Date.now() > expiresAt) await refresh();
  const response = await fetch(`/api/v1${path}`, {
    headers: { Authorization: `Bearer ${access}` }, cache: 'no-store',
  });
  if (!response.ok) return false;
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return true;
}
