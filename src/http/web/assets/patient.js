// One patient: identity, appointments, medical records (doctors and
// admins only), consents, documents, GDPR export and erasure.

import { get, post, patch, qs, download } from './api.js';
import { t, explain, fmtDate, fmtDateTime, fmtMoney } from './i18n.js';
import { h, clear, field, input, select, banner, refusal, formValues } from './dom.js';
import { can } from './main.js';
import { patientForm } from './patients.js';

export async function render(main, { id }) {
  const r = await get(`/patients/${id}`);
  if (!r.ok) { clear(main, banner(explain(r))); return; }
  const p = r.data;
  const identity = h('section', { class: 'panel', id: 'identity' });
  const showIdentity = (patient) => {
    const a = patient.address || {};
    clear(identity,
      h('div', { class: 'page-head' },
        h('h1', {}, `${patient.lastName.toUpperCase()} ${patient.firstName}`),
        can('write') ? h('button', { type: 'button', id: 'edit-patient', onclick: () => clear(identity,
          patientForm(patient, (saved) => showIdentity(saved), () => showIdentity(patient))) }, t('common.edit')) : null),
      h('dl', { class: 'facts' },
        fact(t('p.birthDate'), fmtDate(patient.birthDate)),
        fact(t('p.gender'), patient.gender ? t(`gender.${patient.gender}`) : ''),
        fact(t('p.phone'), patient.phone), fact(t('p.email'), patient.email),
        fact(t('p.line1'), [a.line1, a.postalCode, a.city].filter(Boolean).join(', ')),
        fact(t('p.status'), t(`pstatus.${patient.status}`)),
        fact(t('p.notes'), patient.notes)));
  };
  showIdentity(p);
  const practitioners = await get('/practitioners?limit=100');
  const names = new Map((practitioners.ok ? practitioners.data : []).map((x) => [x.id, `${x.firstName} ${x.lastName}`]));
  clear(main, h('p', {}, h('a', { href: '#/patients' }, `← ${t('patients.title')}`)), identity,
    h('div', { class: 'columns' },
      await appointments(p, names),
      can('medical') ? await records(p, names) : null,
      await consents(p),
      await documents(p),
      can('medical') ? gdpr(p) : null));
}

function fact(label, value) {
  return value ? [h('dt', {}, label), h('dd', {}, value)] : null;
}

function section(id, title, ...content) {
  return h('section', { class: 'panel', id, 'aria-labelledby': `${id}-h` }, h('h2', { id: `${id}-h` }, title), ...content);
}

async function appointments(p, names) {
  const r = await get(`/appointments${qs({ patientId: p.id, limit: 100 })}`);
  const rows = r.ok ? r.data.sort((a, b) => b.startAt.localeCompare(a.startAt)) : [];
  return section('patient-appointments', t('patient.appointments'),
    r.ok ? null : banner(explain(r)),
    rows.length ? h('ul', { class: 'plain' }, rows.map((a) => h('li', {},
      `${fmtDateTime(a.startAt)} · ${names.get(a.practitionerId) || ''} · ${t(`astatus.${a.status}`)}${a.reason ? ` · ${a.reason}` : ''}`)))
      : h('p', { class: 'muted' }, t('common.none')));
}

async function records(p, names) {
  const list = h('div');
  const load = async () => {
    const r = await get(`/medical-records${qs({ patientId: p.id, limit: 100 })}`);
    clear(list, !r.ok ? banner(explain(r)) : r.data.length ? h('ul', { class: 'plain' }, r.data.map((m) => h('li', {},
      h('strong', {}, `${t(`rtype.${m.recordType}`)} · ${m.title || ''}`), ` ${fmtDateTime(m.recordedAt)} ${names.get(m.practitionerId) || ''}`,
      m.content ? h('p', { class: 'pre' }, m.content) : null))) : h('p', { class: 'muted' }, t('common.none')));
  };
  const types = ['consultation', 'diagnosis', 'prescription', 'allergy', 'note', 'vaccination', 'lab_result'];
  const form = h('form', { class: 'inline-form', novalidate: true },
    h('div', { class: 'form-error' }),
    h('div', { class: 'row' },
      field(t('rec.type'), select(types.map((x) => [x, t(`rtype.${x}`)])), 'recordType'),
      field(t('rec.title'), input({}), 'title')),
    field(t('rec.content'), h('textarea', { rows: 3 }), 'content'),
    h('button', { type: 'submit' }, t('rec.add')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { patientId: p.id, ...formValues(form) };
    for (const k of Object.keys(body)) if (body[k] === '') delete body[k];
    const r = await post('/medical-records', body);
    if (r.ok) { form.reset(); clear(form.querySelector('.form-error')); await load(); return; }
    clear(form.querySelector('.form-error'), refusal(form, r));
  });
  await load();
  return section('patient-records', t('patient.records'), list, form);
}

async function consents(p) {
  const list = h('div');
  const templates = await get('/consent-templates?limit=100');
  const titles = new Map((templates.ok ? templates.data : []).map((x) => [x.id, `${x.title} (v${x.version})`]));
  const load = async () => {
    const r = await get(`/consents${qs({ patientId: p.id, limit: 100 })}`);
    clear(list, !r.ok ? banner(explain(r)) : r.data.length ? h('ul', { class: 'plain' }, r.data.map((c) => h('li', {},
      `${titles.get(c.templateId) || ''} · ${t(`cstatus.${c.status}`)}${c.signedAt ? ` ${fmtDate(c.signedAt)}` : ''} `,
      can('write') && c.status === 'pending' ? h('button', { type: 'button', onclick: async () => { await patch(`/consents/${c.id}`, { status: 'signed' }); load(); } }, t('consent.sign')) : null,
      can('write') && c.status === 'signed' ? h('button', { type: 'button', onclick: async () => { await patch(`/consents/${c.id}`, { status: 'revoked' }); load(); } }, t('consent.revoke')) : null)))
      : h('p', { class: 'muted' }, t('common.none')));
  };
  await load();
  let form = null;
  if (can('write') && titles.size) {
    const picker = select([...titles].map(([id, title]) => [id, title]));
    form = h('form', { class: 'inline-form' }, field(t('consent.template'), picker, 'templateId'),
      h('button', { type: 'submit' }, t('consent.add')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const r = await post('/consents', { patientId: p.id, templateId: picker.value });
      if (!r.ok) form.append(banner(explain(r)));
      load();
    });
  }
  return section('patient-consents', t('patient.consents'), list, form);
}

async function documents(p) {
  const r = await get(`/documents${qs({ patientId: p.id, limit: 100 })}`);
  return section('patient-documents', t('patient.documents'),
    r.ok ? null : banner(explain(r)),
    r.ok && r.data.length ? h('ul', { class: 'plain' }, r.data.map((d) => h('li', {},
      h('a', { href: `#/documents/${d.id}` }, `${t(`dtype.${d.documentType}`)} ${d.number || t('doc.draft')}`),
      ` · ${fmtMoney(d.totalCents, d.currency)} · ${t(`dstatus.${d.status}`)}`)))
      : h('p', { class: 'muted' }, t('common.none')),
    can('write') ? h('a', { href: `#/documents`, class: 'button' }, t('doc.new')) : null);
}

function gdpr(p) {
  const out = h('div', { id: 'gdpr-result' });
  return section('patient-gdpr', t('patient.gdpr'),
    h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'export-patient', onclick: async () => {
        const done = await download(`/patients/${p.id}/export`, `patient-${p.id}.json`);
        clear(out, done ? banner(t('patient.exported'), 'info') : banner(t('err.forbidden')));
      } }, t('patient.export')),
      h('button', { type: 'button', class: 'danger', id: 'erase-patient', onclick: async () => {
        if (!confirm(t('patient.eraseConfirm'))) return;
        const r = await post(`/patients/${p.id}/erase`);
        if (r.ok) { clear(out, banner(t('patient.erased'), 'info')); return; }
        if (r.error.code === 'retention_applies') {
          clear(out, h('div', { class: 'banner error', role: 'alert' }, t('patient.retention'),
            h('ul', {}, r.error.details.map((d) => h('li', {}, t('patient.retentionItem', {
              kind: t(`kind.${d.kind}`), until: fmtDate(d.retainedUntil), rule: d.rule,
            }))))));
          return;
        }
        clear(out, banner(explain(r)));
      } }, t('patient.erase'))),
    out);
}
