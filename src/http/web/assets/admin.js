// Administration (clinic admins): staff accounts and roles, practitioners,
// clinic settings, catalogue, consent templates, the audit trail.

import { get, post, patch, del, qs } from './api.js';
import { t, explain, fmtDateTime, fmtMoney, fromZoned } from './i18n.js';
import { h, clear, field, input, select, banner, showFieldErrors, formValues } from './dom.js';
import { can } from './main.js';

const tabs = [
  ['practitioners', 'admin.practitioners', practitionersTab],
  ['staff', 'admin.staff', staffTab],
  ['settings', 'admin.settings', settingsTab],
  ['catalogue', 'admin.catalogue', catalogueTab],
  ['templates', 'admin.templates', templatesTab],
  ['audit', 'admin.audit', auditTab],
];

export async function render(main, { tab }) {
  const current = tabs.find(([id]) => id === tab) || tabs[0];
  const body = h('div', { id: `admin-${current[0]}` });
  clear(main, h('h1', {}, t('admin.title')),
    h('nav', { class: 'tabs', 'aria-label': t('admin.title') }, tabs
      .filter(([id]) => can('admin') || id !== 'audit')
      .map(([id, key]) => h('a', { href: `#/admin/${id}`, 'aria-current': id === current[0] ? 'page' : null }, t(key)))),
    body);
  await current[2](body);
}

/** A list with a create form: 422 details next to the fields. */
async function crud(el, { path, title, fields, row, toBody, actions }) {
  const list = h('div');
  const load = async () => {
    const r = await get(`${path}?limit=100`);
    clear(list, !r.ok ? banner(explain(r)) : r.data.length ? h('table', { class: 'table' },
      h('tbody', {}, r.data.map((item) => h('tr', {}, row(item).map((c) => h('td', {}, c)),
        actions ? h('td', {}, actions(item, load)) : null)))) : h('p', { class: 'muted' }, t('common.none')));
  };
  const error = h('div');
  const form = h('form', { class: 'panel', novalidate: true, id: `${path.slice(1)}-form` }, h('h2', {}, title), error,
    h('div', { class: 'row wrap' }, fields()), h('button', { type: 'submit', class: 'primary' }, t('common.create')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = formValues(form);
    for (const k of Object.keys(values)) if (values[k] === '') delete values[k];
    const r = await post(path, toBody ? toBody(values) : values);
    if (r.ok) { form.reset(); clear(error); showFieldErrors(form, []); await load(); return; }
    const rest = r.error.code === 'validation_failed' ? showFieldErrors(form, r.error.details) : [];
    clear(error, banner([explain(r), ...rest.map((d) => ` ${d.field}: ${d.message}`)].join('')));
  });
  clear(el, can('manage') ? form : null, list);
  await load();
}

const roles = ['admin', 'doctor', 'secretary', 'readonly'];

function practitionersTab(el) {
  return crud(el, {
    path: '/practitioners', title: t('pr.new'),
    fields: () => [field(t('p.lastName'), input({ required: true }), 'lastName'), field(t('p.firstName'), input({ required: true }), 'firstName'),
      field(t('pr.specialty'), input({}), 'specialty'), field(t('pr.licenseNumber'), input({}), 'licenseNumber'),
      field(t('p.email'), input({ type: 'email' }), 'email'), field(t('p.phone'), input({ type: 'tel' }), 'phone')],
    row: (p) => [`${p.firstName} ${p.lastName}`, p.specialty || '', p.licenseNumber || '', p.isActive ? t('u.active') : '—'],
  });
}

function staffTab(el) {
  return crud(el, {
    path: '/users', title: t('u.new'),
    fields: () => [field(t('p.lastName'), input({ required: true }), 'lastName'), field(t('p.firstName'), input({ required: true }), 'firstName'),
      field(t('auth.email'), input({ type: 'email', autocomplete: 'off' }), 'email'),
      field(t('auth.password'), input({ type: 'password', autocomplete: 'new-password' }), 'password'),
      field(t('u.role'), select(roles.map((r) => [r, t(`role.${r}`)])), 'role')],
    row: (u) => [`${u.firstName} ${u.lastName}`, u.email, u.isActive ? t('u.active') : '—'],
    actions: (u, reload) => {
      const role = select(roles.map((r) => [r, t(`role.${r}`)]), { value: u.role, 'aria-label': `${t('u.role')} ${u.email}` });
      role.addEventListener('change', async () => { const r = await patch(`/users/${u.id}`, { role: role.value }); if (!r.ok) alert(explain(r)); reload(); });
      return [role, ' ', h('button', { type: 'button', onclick: async () => {
        const r = await patch(`/users/${u.id}`, { isActive: !u.isActive }); if (!r.ok) alert(explain(r)); reload();
      } }, u.isActive ? t('u.deactivate') : t('u.activate'))];
    },
  });
}

async function settingsTab(el) {
  const r = await get('/clinic');
  if (!r.ok) { clear(el, banner(explain(r))); return; }
  const s = r.data.settings;
  const out = h('div');
  const form = h('form', { class: 'panel', novalidate: true },
    h('h2', {}, r.data.name), out,
    h('div', { class: 'row' },
      field(t('s.timezone'), input({ value: s.timezone }), 'timezone'),
      field(t('s.currency'), input({ value: s.currency, maxlength: 3 }), 'currency'),
      field(t('s.locale'), input({ value: s.locale }), 'locale')),
    can('manage') ? h('button', { type: 'submit', class: 'primary' }, t('common.save')) : null);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const x = await patch('/clinic/settings', formValues(form));
    if (x.ok) { showFieldErrors(form, []); clear(out, banner(t('common.saved'), 'info')); return; }
    if (x.error.code === 'validation_failed') showFieldErrors(form, x.error.details);
    clear(out, banner(explain(x)));
  });
  clear(el, form);
}

function catalogueTab(el) {
  return crud(el, {
    path: '/products-services', title: t('cat.new'),
    fields: () => [field(t('cat.name'), input({ required: true }), 'name'), field(t('cat.code'), input({}), 'code'),
      field(t('cat.kind'), select([['service', t('kind.service')], ['product', t('kind.product')]]), 'kind'),
      field(t('cat.price'), input({ type: 'number', step: '0.01', min: 0 }), 'unitPriceCents'),
      field(t('cat.vat'), input({ type: 'number', step: '0.1', min: 0, value: '0' }), 'vatRate'),
      field(t('cat.duration'), input({ type: 'number', min: 0 }), 'durationMinutes')],
    toBody: (v) => ({ ...v,
      unitPriceCents: v.unitPriceCents === undefined ? undefined : Math.round(Number(v.unitPriceCents) * 100),
      vatRate: v.vatRate === undefined ? undefined : Math.round(Number(v.vatRate) * 100),
      durationMinutes: v.durationMinutes === undefined ? undefined : Number(v.durationMinutes) }),
    row: (p) => [p.name, p.code || '', t(`kind.${p.kind}`), fmtMoney(p.unitPriceCents), `${p.vatRate / 100} %`],
    actions: can('manage') ? (p, reload) => h('button', { type: 'button', onclick: async () => { await del(`/products-services/${p.id}`); reload(); } }, t('common.delete')) : null,
  });
}

function templatesTab(el) {
  return crud(el, {
    path: '/consent-templates', title: t('tpl.new'),
    fields: () => [field(t('tpl.title'), input({ required: true }), 'title'), field(t('tpl.body'), h('textarea', { rows: 3 }), 'body')],
    row: (x) => [x.title, `v${x.version}`],
  });
}

async function auditTab(el) {
  const rows = h('div');
  const action = select([['', t('common.all')], ...['read', 'list', 'create', 'update', 'delete', 'export', 'erase'].map((a) => [a, a])]);
  const from = input({ type: 'date' });
  const to = input({ type: 'date' });
  const patientId = input({ placeholder: 'UUID', pattern: '[0-9a-f-]{36}' });
  const staff = await get('/users?limit=100');
  const who = new Map((staff.ok ? staff.data : []).map((u) => [u.id, `${u.firstName} ${u.lastName}`]));
  const user = select([['', t('common.all')], ...[...who].map(([id, name]) => [id, name])]);
  const load = async () => {
    // Midnight of the day on the clinic's clock.
    const day = (v, add) => { if (!v) return ''; const [y, m, d] = v.split('-').map(Number); return fromZoned(y, m, d + add).toISOString(); };
    const r = await get(`/audit${qs({ action: action.value, from: day(from.value, 0), to: day(to.value, 1), userId: user.value, patientId: patientId.value.trim(), limit: 100 })}`);
    clear(rows, !r.ok ? banner(explain(r)) : h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, [t('audit.when'), t('audit.who'), t('audit.action'), t('audit.resource'), t('doc.patient')].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, r.data.map((e) => h('tr', {}, h('td', {}, fmtDateTime(e.occurredAt)), h('td', {}, who.get(e.actorUserId) || e.actorRole || ''),
        h('td', {}, e.action), h('td', {}, `${e.resourceType}${e.changedFields.length ? ` (${e.changedFields.join(', ')})` : ''}`),
        h('td', {}, e.patientId ? h('a', { href: `#/patients/${e.patientId}` }, e.patientId.slice(0, 8)) : ''))))));
  };
  const form = h('form', { class: 'toolbar' }, field(t('audit.action'), action), field(t('audit.who'), user),
    field(t('audit.from'), from), field(t('audit.to'), to), field(t('doc.patient'), patientId), h('button', { type: 'submit' }, t('audit.filter')));
  form.addEventListener('submit', (event) => { event.preventDefault(); load(); });
  clear(el, form, rows);
  await load();
}
