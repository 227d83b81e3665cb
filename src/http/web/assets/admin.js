// Administration (clinic admins): practitioners (create, edit, deactivate),
// staff accounts and roles, clinic settings (preferences, and the address,
// SIRET and VAT number its invoices print), the catalogue (create, edit,
// deactivate, delete, sort into categories), categories (create, rename,
// delete), consent templates (create, edit: a signed one gets a new
// version), the audit trail. Other roles read these lists without buttons.

import { get, post, patch, del, qs } from './api.js';
import { t, explain, fmtDateTime, fmtMoney, fromZoned } from './i18n.js';
import { h, clear, field, input, select, banner, showFieldErrors, refusal, formValues } from './dom.js';
import { can } from './main.js';

const tabs = [
  ['practitioners', 'admin.practitioners', practitionersTab],
  ['staff', 'admin.staff', staffTab],
  ['settings', 'admin.settings', settingsTab],
  ['catalogue', 'admin.catalogue', catalogueTab],
  ['categories', 'admin.categories', categoriesTab],
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

/** The values of `form` as a request body: on a create, empty fields are
 * left out; on an edit, they are `null` (cleared). `address.x` fields make
 * one nested `address` object. */
function bodyOf(form, editing) {
  const body = {};
  for (const [k, v] of Object.entries(formValues(form))) {
    const value = v === '' ? (editing ? null : undefined) : v;
    if (value === undefined) continue;
    if (k.startsWith('address.')) body.address = { ...body.address, [k.slice(8)]: value };
    else body[k] = value;
  }
  if (body.address && Object.values(body.address).every((v) => v === null)) body.address = null;
  return body;
}

/** Row buttons named after their row, for screen readers. */
function rowButton(text, what, onclick, kind) {
  return h('button', { type: 'button', class: kind || null, 'aria-label': `${text} ${what}`, onclick }, text);
}

/** A list with a form that creates, or (given `editTitle`) edits the row
 * picked: 422 details next to the fields. */
async function crud(el, { path, title, editTitle, fields, row, name, toBody, actions }) {
  const list = h('div');
  const error = h('div');
  const form = h('form', { class: 'panel', novalidate: true, id: `${path.slice(1)}-form` });
  let editing = null;
  const load = async () => {
    const r = await get(`${path}?limit=100`);
    clear(list, !r.ok ? banner(explain(r)) : r.data.length ? h('table', { class: 'table' },
      h('tbody', {}, r.data.map((item) => h('tr', { class: item.isActive === false ? 'inactive' : null }, row(item).map((c) => h('td', {}, c)),
        can('manage') ? h('td', {}, h('div', { class: 'row-actions' },
          editTitle ? rowButton(t('common.edit'), name(item), () => edit(item)) : null,
          actions ? actions(item, load) : null)) : null)))) : h('p', { class: 'muted' }, t('common.none')));
  };
  const edit = async (item) => {
    editing = item;
    clear(error);
    clear(form, h('h2', {}, item ? `${editTitle} · ${name(item)}` : title), error,
      h('div', { class: 'row wrap' }, await fields(item || {})),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, item ? t('common.save') : t('common.create')),
        item ? h('button', { type: 'button', onclick: () => edit(null) }, t('common.cancel')) : null));
    if (item) form.querySelector('input, textarea, select').focus();
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = bodyOf(form, !!editing);
    const request = toBody ? toBody(body) : body;
    const r = editing ? await patch(`${path}/${editing.id}`, request) : await post(path, request);
    if (!r.ok) { clear(error, refusal(form, r)); return; }
    const saved = r.status === 201 && editing && r.data.version ? t('tpl.newVersion', { version: r.data.version }) : null;
    await edit(null);
    if (saved) clear(error, banner(saved, 'info'));
    await load();
  });
  clear(el, can('manage') ? form : null, list);
  await Promise.all([edit(null), load()]);
}

/** Deactivates or reactivates a row (`isActive`). */
function activeToggle(path, item, what, reload) {
  return rowButton(item.isActive ? t('u.deactivate') : t('u.activate'), what, async () => {
    const r = await patch(`${path}/${item.id}`, { isActive: !item.isActive });
    if (!r.ok) alert(explain(r));
    reload();
  });
}

/** Deletes a row once the user confirms. */
function deleteButton(path, item, what, reload) {
  return rowButton(t('common.delete'), what, async () => {
    if (!confirm(t('common.deleteConfirm', { what }))) return;
    const r = await del(`${path}/${item.id}`);
    if (!r.ok) alert(explain(r));
    reload();
  }, 'danger');
}

const roles = ['admin', 'doctor', 'secretary', 'readonly'];
const active = (x) => (x.isActive ? t('u.active') : t('u.inactive'));

function practitionersTab(el) {
  const name = (p) => `${p.firstName} ${p.lastName}`;
  return crud(el, {
    path: '/practitioners', title: t('pr.new'), editTitle: t('pr.edit'), name,
    fields: (p) => [field(t('p.lastName'), input({ required: true, value: p.lastName }), 'lastName'), field(t('p.firstName'), input({ required: true, value: p.firstName }), 'firstName'),
      field(t('pr.specialty'), input({ value: p.specialty }), 'specialty'), field(t('pr.licenseNumber'), input({ value: p.licenseNumber }), 'licenseNumber'),
      field(t('p.email'), input({ type: 'email', value: p.email }), 'email'), field(t('p.phone'), input({ type: 'tel', value: p.phone }), 'phone')],
    row: (p) => [name(p), p.specialty || '', p.licenseNumber || '', active(p)],
    actions: (p, reload) => activeToggle('/practitioners', p, name(p), reload),
  });
}

function staffTab(el) {
  return crud(el, {
    path: '/users', title: t('u.new'), name: (u) => u.email,
    fields: () => [field(t('p.lastName'), input({ required: true }), 'lastName'), field(t('p.firstName'), input({ required: true }), 'firstName'),
      field(t('auth.email'), input({ type: 'email', autocomplete: 'off' }), 'email'),
      field(t('auth.password'), input({ type: 'password', autocomplete: 'new-password' }), 'password'),
      field(t('u.role'), select(roles.map((r) => [r, t(`role.${r}`)])), 'role')],
    row: (u) => [`${u.firstName} ${u.lastName}`, u.email, active(u)],
    actions: (u, reload) => {
      const role = select(roles.map((r) => [r, t(`role.${r}`)]), { value: u.role, 'aria-label': `${t('u.role')} ${u.email}` });
      role.addEventListener('change', async () => { const r = await patch(`/users/${u.id}`, { role: role.value }); if (!r.ok) alert(explain(r)); reload(); });
      return [role, activeToggle('/users', u, u.email, reload)];
    },
  });
}

async function settingsTab(el) {
  const r = await get('/clinic');
  if (!r.ok) { clear(el, banner(explain(r))); return; }
  const s = r.data.settings;
  const a = s.address || {};
  const out = h('div');
  const form = h('form', { class: 'panel', novalidate: true, id: 'settings-form' },
    h('h2', {}, r.data.name), out,
    h('h3', {}, t('s.preferences')),
    h('div', { class: 'row' },
      field(t('s.timezone'), input({ value: s.timezone }), 'timezone'),
      field(t('s.currency'), input({ value: s.currency, maxlength: 3 }), 'currency'),
      field(t('s.locale'), input({ value: s.locale }), 'locale')),
    h('h3', {}, t('s.legal')),
    h('p', { class: 'muted' }, t('s.legalHint')),
    h('div', { class: 'row wrap' },
      field(t('p.line1'), input({ value: a.line1, autocomplete: 'address-line1' }), 'address.line1'),
      field(t('p.line2'), input({ value: a.line2, autocomplete: 'address-line2' }), 'address.line2')),
    h('div', { class: 'row wrap' },
      field(t('p.postalCode'), input({ value: a.postalCode, autocomplete: 'postal-code' }), 'address.postalCode'),
      field(t('p.city'), input({ value: a.city, autocomplete: 'address-level2' }), 'address.city'),
      field(t('p.country'), input({ value: a.country, maxlength: 2 }), 'address.country')),
    h('div', { class: 'row wrap' },
      field(t('s.siret'), input({ value: s.siret, inputmode: 'numeric' }), 'siret'),
      field(t('s.vatNumber'), input({ value: s.vatNumber }), 'vatNumber')),
    can('manage') ? h('button', { type: 'submit', class: 'primary' }, t('common.save')) : null);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const x = await patch('/clinic/settings', bodyOf(form, true));
    if (x.ok) { showFieldErrors(form, []); clear(out, banner(t('common.saved'), 'info')); return; }
    clear(out, refusal(form, x));
  });
  clear(el, form);
}

async function catalogueTab(el) {
  const categories = await get('/categories?limit=100');
  const all = categories.ok ? categories.data : [];
  const label = new Map(all.map((c) => [c.id, c.name]));
  const picks = (chosen = []) => {
    if (!all.length) return h('p', { class: 'muted check-group' }, t('cat.noCategory'));
    const boxes = all.map((c, i) => h('label', {}, h('input', {
      type: 'checkbox', name: 'categoryIds', value: c.id, 'data-group': '', checked: chosen.includes(c.id), id: i === 0 ? 'category-picks' : null,
    }), c.name));
    return h('fieldset', { class: 'check-group' }, h('legend', {}, t('cat.categories')), boxes,
      h('p', { class: 'field-error', id: 'category-picks-error', role: 'alert' }));
  };
  return crud(el, {
    path: '/products-services', title: t('cat.new'), editTitle: t('cat.edit'), name: (p) => p.name,
    fields: (p) => [field(t('cat.name'), input({ required: true, value: p.name }), 'name'), field(t('cat.code'), input({ value: p.code }), 'code'),
      field(t('cat.kind'), select([['service', t('kind.service')], ['product', t('kind.product')]], { value: p.kind }), 'kind'),
      field(t('cat.price'), input({ type: 'number', step: '0.01', min: 0, value: p.unitPriceCents !== undefined ? (p.unitPriceCents / 100).toFixed(2) : null }), 'unitPriceCents'),
      field(t('cat.vat'), input({ type: 'number', step: '0.1', min: 0, value: p.vatRate !== undefined ? String(p.vatRate / 100) : '0' }), 'vatRate'),
      field(t('cat.duration'), input({ type: 'number', min: 0, value: p.durationMinutes }), 'durationMinutes'),
      picks(p.categoryIds)],
    toBody: (v) => ({ ...v,
      unitPriceCents: typeof v.unitPriceCents === 'string' ? Math.round(Number(v.unitPriceCents) * 100) : v.unitPriceCents,
      vatRate: typeof v.vatRate === 'string' ? Math.round(Number(v.vatRate) * 100) : v.vatRate,
      durationMinutes: typeof v.durationMinutes === 'string' ? Number(v.durationMinutes) : v.durationMinutes }),
    row: (p) => [p.name, p.code || '', t(`kind.${p.kind}`), fmtMoney(p.unitPriceCents), `${p.vatRate / 100} %`,
      p.categoryIds.map((id) => label.get(id)).filter(Boolean).join(', '), active(p)],
    actions: (p, reload) => [activeToggle('/products-services', p, p.name, reload), deleteButton('/products-services', p, p.name, reload)],
  });
}

function categoriesTab(el) {
  return crud(el, {
    path: '/categories', title: t('catg.new'), editTitle: t('catg.edit'), name: (c) => c.name,
    fields: (c) => [field(t('cat.name'), input({ required: true, value: c.name }), 'name'),
      field(t('catg.description'), input({ value: c.description }), 'description')],
    row: (c) => [c.name, c.description || ''],
    actions: (c, reload) => deleteButton('/categories', c, c.name, reload),
  });
}

function templatesTab(el) {
  return crud(el, {
    path: '/consent-templates', title: t('tpl.new'), editTitle: t('tpl.edit'), name: (x) => x.title,
    fields: (x) => [field(t('tpl.title'), input({ required: true, value: x.title }), 'title'),
      field(t('tpl.body'), h('textarea', { rows: 4, value: x.body }), 'body')],
    row: (x) => [x.title, `v${x.version}`],
    actions: (x, reload) => deleteButton('/consent-templates', x, x.title, reload),
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
