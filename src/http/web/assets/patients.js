// Patients: search as you type (the text stays in memory, never in the
// page URL), create, and the form shared with the patient page.

import { get, post, patch, qs } from './api.js';
import { t, explain, fmtDate } from './i18n.js';
import { h, clear, field, input, select, banner, refusal, formValues } from './dom.js';
import { can } from './main.js';

let lastSearch = '';

export async function render(main) {
  const results = h('div', { id: 'patient-results' });
  const search = input({ type: 'search', id: 'patient-search', value: lastSearch, autocomplete: 'off' });
  const formSlot = h('div');
  let timer = null;
  let seq = 0;
  async function run() {
    const mine = ++seq;
    lastSearch = search.value;
    const r = await get(`/patients${qs({ search: search.value.trim(), limit: 50 })}`);
    if (mine !== seq) return;
    if (!r.ok) { clear(results, banner(explain(r))); return; }
    clear(results,
      h('p', { class: 'muted' }, t('patients.count', { n: r.pagination.total })),
      r.data.length ? h('ul', { class: 'cards' }, r.data.map(patientCard)) : h('p', {}, t('common.none')));
  }
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(run, 200); });
  clear(main,
    h('div', { class: 'page-head' }, h('h1', {}, t('patients.title')),
      can('write') ? h('button', { type: 'button', class: 'primary', id: 'new-patient', onclick: () => {
        clear(formSlot, patientForm(null, (p) => { location.hash = `#/patients/${p.id}`; }, () => clear(formSlot)));
      } }, t('patients.new')) : null),
    formSlot,
    h('div', { role: 'search' }, field(t('patients.search'), search)),
    results);
  search.focus();
  await run();
}

function patientCard(p) {
  return h('li', {}, h('a', { href: `#/patients/${p.id}`, class: 'card' },
    h('strong', {}, `${p.lastName.toUpperCase()} ${p.firstName}`),
    h('span', { class: 'muted' }, [p.birthDate ? fmtDate(p.birthDate) : null, p.phone, p.email].filter(Boolean).join(' · '))));
}

/** Create (`patient` null) or edit form; 422 details appear next to their fields. */
export function patientForm(patient, onSaved, onCancel) {
  const p = patient || {};
  const a = p.address || {};
  const opt = (prefix, values) => values.map((v) => [v, t(`${prefix}.${v}`)]);
  const form = h('form', { class: 'panel', id: 'patient-form', novalidate: true },
    h('h2', {}, patient ? t('patients.edit') : t('patients.new')),
    h('div', { class: 'form-error' }),
    h('div', { class: 'row' },
      field(t('p.lastName'), input({ value: p.lastName, required: true }), 'lastName'),
      field(t('p.firstName'), input({ value: p.firstName, required: true }), 'firstName')),
    h('div', { class: 'row' },
      field(t('p.birthDate'), input({ type: 'date', value: p.birthDate }), 'birthDate'),
      field(t('p.gender'), select([['', '—'], ...opt('gender', ['female', 'male', 'other', 'unknown'])], { value: p.gender || '' }), 'gender'),
      field(t('p.status'), select(opt('pstatus', ['active', 'inactive', 'deceased']), { value: p.status || 'active' }), 'status')),
    h('div', { class: 'row' },
      field(t('p.email'), input({ type: 'email', value: p.email }), 'email'),
      field(t('p.phone'), input({ type: 'tel', value: p.phone }), 'phone')),
    field(t('p.line1'), input({ value: a.line1 }), 'address.line1'),
    h('div', { class: 'row' },
      field(t('p.postalCode'), input({ value: a.postalCode }), 'address.postalCode'),
      field(t('p.city'), input({ value: a.city }), 'address.city'),
      field(t('p.country'), input({ value: a.country || 'FR', maxlength: 2 }), 'address.country')),
    field(t('p.nationalId'), input({ value: p.nationalId, autocomplete: 'off' }), 'nationalId'),
    field(t('p.notes'), h('textarea', { rows: 3 }, p.notes || ''), 'notes'),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, t('common.save')),
      onCancel ? h('button', { type: 'button', onclick: onCancel }, t('common.cancel')) : null));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = formValues(form);
    const body = {};
    const address = {};
    for (const [k, v] of Object.entries(values)) {
      const value = v === '' ? (patient ? null : undefined) : v;
      if (value === undefined) continue;
      if (k.startsWith('address.')) address[k.slice(8)] = value; else body[k] = value;
    }
    if (Object.values(address).some((v) => v)) body.address = address;
    else if (patient) body.address = null;
    const r = patient ? await patch(`/patients/${patient.id}`, body) : await post('/patients', body);
    if (r.ok) { onSaved(r.data); return; }
    clear(form.querySelector('.form-error'), refusal(form, r));
  });
  return form;
}

/** A patient picker: type, then choose; calls `onPick(patient)`. */
export function patientPicker(onPick, id = 'patient-picker') {
  const box = input({ type: 'search', id, autocomplete: 'off', role: 'combobox', 'aria-expanded': 'false' });
  const list = h('ul', { class: 'picker', role: 'listbox' });
  let timer = null;
  box.addEventListener('input', () => {
    clearTimeout(timer);
    onPick(null);
    timer = setTimeout(async () => {
      const text = box.value.trim();
      if (!text) { clear(list); return; }
      const r = await get(`/patients${qs({ search: text, limit: 8 })}`);
      clear(list, (r.ok ? r.data : []).map((p) => h('li', {},
        h('button', { type: 'button', role: 'option', onclick: () => {
          box.value = `${p.lastName.toUpperCase()} ${p.firstName}`;
          clear(list);
          onPick(p);
        } }, `${p.lastName.toUpperCase()} ${p.firstName}${p.birthDate ? ` (${fmtDate(p.birthDate)})` : ''}`))));
      box.setAttribute('aria-expanded', String(list.children.length > 0));
    }, 200);
  });
  return { control: box, list };
}
