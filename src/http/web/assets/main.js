// The shell: boots the session, draws the header and navigation, and
// routes `#/...` to a view. Routes carry ids only, never patient data.

import { session, refresh, get, logout, onSessionEnd, IDLE_MINUTES } from './api.js';
import { t, setLang, lang, setTimeZone } from './i18n.js';
import { h, clear, banner } from './dom.js';
import * as auth from './auth.js';

const root = document.getElementById('app');
let notice = null;
let zoneOf = null;

/** What the signed-in role may do (the SPEC's role table). */
export function can(what) {
  const role = session.user ? session.user.role : null;
  const rules = {
    write: ['admin', 'doctor', 'secretary'],
    medical: ['admin', 'doctor'],
    manage: ['admin'],
    admin: ['admin'],
  };
  return (rules[what] || []).includes(role);
}

const routes = [
  [/^#\/agenda$/, () => import('./agenda.js'), []],
  [/^#\/patients$/, () => import('./patients.js'), []],
  [/^#\/patients\/([0-9a-f-]{36})$/, () => import('./patient.js'), ['id']],
  [/^#\/documents$/, () => import('./documents.js'), []],
  [/^#\/documents\/([0-9a-f-]{36})$/, () => import('./documents.js'), ['id']],
  [/^#\/documents\/([0-9a-f-]{36})\/print$/, () => import('./documents.js'), ['id', 'print']],
  [/^#\/admin(?:\/(\w+))?$/, () => import('./admin.js'), ['tab']],
];

function navLink(hash, key) {
  const current = location.hash.startsWith(hash);
  return h('a', { href: hash, 'aria-current': current ? 'page' : null }, t(key));
}

function switchLang() {
  setLang(t('lang.other'));
  render();
}

function shell() {
  const clinic = session.clinic ? session.clinic.name : '';
  const user = session.user;
  const header = h('header', { class: 'top' },
    h('div', { class: 'brand' }, h('strong', {}, t('app.title')), clinic ? h('span', {}, ` · ${clinic}`) : null),
    h('nav', { 'aria-label': t('nav.main') },
      navLink('#/agenda', 'nav.agenda'),
      navLink('#/patients', 'nav.patients'),
      navLink('#/documents', 'nav.documents'),
      can('admin') || can('manage') ? navLink('#/admin', 'nav.admin') : null),
    h('div', { class: 'who' },
      h('span', {}, `${user.firstName} ${user.lastName} (${t(`role.${user.role}`)})`),
      h('button', { type: 'button', class: 'link', onclick: switchLang, lang: t('lang.other') }, t('lang.switch')),
      h('button', { type: 'button', id: 'logout', onclick: async () => { await logout(); notice = t('session.ended'); history.replaceState(null, '', location.pathname); render(); } }, t('nav.logout'))));
  const main = h('main', { id: 'main', tabindex: '-1' });
  clear(root, header, main);
  return main;
}

export async function render() {
  if (!session.user) {
    const view = location.hash === '#/register' ? auth.registerView : auth.loginView;
    clear(root, view({ notice, onSignedIn: signedIn, onLang: switchLang }));
    notice = null;
    return;
  }
  if (zoneOf !== session.user.id) {
    // Times are shown and entered in the clinic's timezone.
    const clinic = await get('/clinic');
    if (clinic.ok) { setTimeZone(clinic.data.settings.timezone); zoneOf = session.user.id; }
  }
  if (!location.hash || location.hash === '#/register' || location.hash === '#/login') {
    history.replaceState(null, '', '#/agenda');
  }
  const main = shell();
  const match = routes.map(([re, load, names]) => [location.hash.match(re), load, names]).find(([m]) => m);
  if (!match) { clear(main, banner(t('err.not_found'))); return; }
  const [m, load, names] = match;
  const params = {};
  names.forEach((name, i) => { params[name] = m[i + 1]; });
  if (names.includes('print')) params.print = true;
  const view = await load();
  clear(main, h('p', { class: 'loading' }, t('common.loading')));
  await view.render(main, params);
}

async function signedIn() {
  if (location.hash === '#/agenda') await render();
  else location.hash = '#/agenda';
}

onSessionEnd((reason) => {
  session.user = null;
  notice = reason === 'idle' ? t('session.idle', { minutes: IDLE_MINUTES }) : t('session.expired');
  render();
});
addEventListener('hashchange', () => render());

async function boot() {
  setLang('fr');
  // A page reload keeps the session through the refresh cookie.
  if (await refresh()) {
    const me = await get('/auth/me');
    if (me.ok) { session.user = me.data.user; session.clinic = me.data.clinic; }
  }
  await render();
}

boot();
export { lang };
