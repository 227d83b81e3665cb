// Quotes, invoices and credit notes: create, issue (the number appears),
// accept and convert a quote, cancel an invoice (its credit note appears),
// and a printable view with the legal mentions.

import { get, post, patch, del, qs } from './api.js';
import { t, explain, fmtDate, fmtMoney } from './i18n.js';
import { h, clear, field, input, select, banner, refusal } from './dom.js';
import { can } from './main.js';
import { patientPicker } from './patients.js';

let typeFilter = '';

async function patientName(id) {
  const r = await get(`/patients/${id}`);
  return r.ok ? r.data : null;
}

export async function render(main, params) {
  if (params.id && params.print) return printable(main, params.id);
  if (params.id) return detail(main, params.id);
  return list(main);
}

async function list(main) {
  const rows = h('div');
  const formSlot = h('div');
  const filter = select([['', t('common.all')], ['quote', t('dtype.quote')], ['invoice', t('dtype.invoice')], ['credit_note', t('dtype.credit_note')]], { value: typeFilter });
  const load = async () => {
    const r = await get(`/documents${qs({ documentType: typeFilter, limit: 100 })}`);
    if (!r.ok) { clear(rows, banner(explain(r))); return; }
    const people = new Map();
    await Promise.all([...new Set(r.data.map((d) => d.patientId))].map(async (id) => people.set(id, await patientName(id))));
    const name = (id) => { const p = people.get(id); return p ? `${p.lastName.toUpperCase()} ${p.firstName}` : ''; };
    clear(rows, r.data.length ? h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, [t('doc.type'), t('doc.number'), t('doc.patient'), t('doc.issueDate'), t('doc.total'), t('common.status')].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, r.data.map((d) => h('tr', {},
        h('td', {}, t(`dtype.${d.documentType}`)),
        h('td', {}, h('a', { href: `#/documents/${d.id}` }, d.number || t('doc.draft'))),
        h('td', {}, name(d.patientId)), h('td', {}, fmtDate(d.issueDate)),
        h('td', { class: 'num' }, fmtMoney(d.totalCents, d.currency)), h('td', {}, t(`dstatus.${d.status}`))))))
      : h('p', { class: 'muted' }, t('common.none')));
  };
  filter.addEventListener('change', () => { typeFilter = filter.value; load(); });
  clear(main,
    h('div', { class: 'page-head' }, h('h1', {}, t('doc.title')),
      can('write') ? h('button', { type: 'button', class: 'primary', id: 'new-document', onclick: async () => clear(formSlot, await newDocument(() => clear(formSlot))) }, t('doc.new')) : null),
    formSlot, field(t('doc.type'), filter), rows);
  await load();
}

async function newDocument(onCancel) {
  let patient = null;
  const picker = patientPicker((p) => { patient = p; }, 'document-patient');
  const type = select([['invoice', t('dtype.invoice')], ['quote', t('dtype.quote')]], { id: 'document-type' });
  const catalogue = await get('/products-services?limit=100');
  const products = catalogue.ok ? catalogue.data.filter((x) => x.isActive !== false) : [];
  const lines = h('tbody');
  const addLine = (item = {}) => {
    const row = h('tr', { class: 'line' },
      h('td', {}, input({ value: item.description || '', 'aria-label': t('doc.description'), class: 'l-desc', required: true })),
      h('td', {}, input({ type: 'number', min: 1, value: item.quantity || 1, 'aria-label': t('doc.quantity'), class: 'l-qty' })),
      h('td', {}, input({ type: 'number', min: 0, step: '0.01', value: item.unitPriceCents !== undefined ? (item.unitPriceCents / 100).toFixed(2) : '', 'aria-label': t('doc.unitPrice'), class: 'l-price' })),
      h('td', {}, input({ type: 'number', min: 0, step: '0.1', value: item.vatRate !== undefined ? item.vatRate / 100 : 0, 'aria-label': t('doc.vat'), class: 'l-vat' })),
      h('td', {}, h('button', { type: 'button', 'aria-label': t('common.delete'), onclick: () => row.remove() }, '×')));
    lines.append(row);
  };
  addLine();
  const productPick = select([['', `${t('doc.fromCatalogue')}…`], ...products.map((p) => [p.id, `${p.name} (${fmtMoney(p.unitPriceCents)})`])]);
  productPick.addEventListener('change', () => {
    const p = products.find((x) => x.id === productPick.value);
    if (p) {
      const empty = [...lines.querySelectorAll('.l-desc')].find((el) => !el.value);
      if (empty) empty.closest('tr').remove();
      addLine({ description: p.name, unitPriceCents: p.unitPriceCents, vatRate: p.vatRate });
    }
    productPick.value = '';
  });
  const error = h('div');
  const form = h('form', { class: 'panel', id: 'document-form', novalidate: true },
    h('h2', {}, t('doc.new')), error,
    h('div', { class: 'row' }, field(t('doc.type'), type, 'documentType'), h('div', {}, field(t('doc.patient'), picker.control, 'patientId'), picker.list)),
    h('h3', {}, t('doc.lines')),
    h('table', { class: 'table lines' }, h('thead', {}, h('tr', {}, [t('doc.description'), t('doc.quantity'), t('doc.unitPrice'), t('doc.vat'), ''].map((x) => h('th', { scope: 'col' }, x)))), lines),
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => addLine() }, t('doc.addLine')), products.length ? productPick : null),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('common.create')), h('button', { type: 'button', onclick: onCancel }, t('common.cancel'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!patient) { clear(error, banner(t('agenda.pickPatient'))); return; }
    const items = [...lines.querySelectorAll('tr')].map((row) => ({
      description: row.querySelector('.l-desc').value.trim(),
      quantity: Number(row.querySelector('.l-qty').value),
      unitPriceCents: Math.round(Number(row.querySelector('.l-price').value) * 100),
      vatRate: Math.round(Number(row.querySelector('.l-vat').value) * 100),
    }));
    const r = await post('/documents', { documentType: type.value, patientId: patient.id, items });
    if (r.ok) { location.hash = `#/documents/${r.data.id}`; return; }
    clear(error, refusal(form, r));
  });
  return form;
}

function linesTable(d) {
  return h('table', { class: 'table lines' },
    h('thead', {}, h('tr', {}, [t('doc.description'), t('doc.quantity'), t('doc.unitPrice'), t('doc.vat'), t('doc.lineTotal')].map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, d.items.map((i) => h('tr', {},
      h('td', {}, i.description), h('td', { class: 'num' }, i.quantity), h('td', { class: 'num' }, fmtMoney(i.unitPriceCents, d.currency)),
      h('td', { class: 'num' }, `${i.vatRate / 100} %`), h('td', { class: 'num' }, fmtMoney(i.subtotalCents, d.currency))))),
    h('tfoot', {},
      h('tr', {}, h('th', { colspan: 4, scope: 'row' }, t('doc.subtotal')), h('td', { class: 'num' }, fmtMoney(d.subtotalCents, d.currency))),
      h('tr', {}, h('th', { colspan: 4, scope: 'row' }, t('doc.tax')), h('td', { class: 'num' }, fmtMoney(d.taxCents, d.currency))),
      h('tr', { class: 'total' }, h('th', { colspan: 4, scope: 'row' }, t('doc.total')), h('td', { class: 'num', id: 'doc-total' }, fmtMoney(d.totalCents, d.currency)))));
}

async function detail(main, id) {
  const r = await get(`/documents/${id}`);
  if (!r.ok) { clear(main, banner(explain(r))); return; }
  const d = r.data;
  const p = await patientName(d.patientId);
  const error = h('div');
  const act = (work) => async () => {
    const result = await work();
    if (result.ok) { if (result.data && result.data.id && result.data.id !== d.id) location.hash = `#/documents/${result.data.id}`; else detail(main, id); }
    else clear(error, banner(explain(result)));
  };
  const status = (s) => act(() => patch(`/documents/${id}`, { status: s }));
  const w = can('write');
  const related = [];
  if (d.creditNoteId) {
    const credit = await get(`/documents/${d.creditNoteId}`);
    if (credit.ok) related.push(h('p', { class: 'banner info', id: 'credit-note' }, h('a', { href: `#/documents/${credit.data.id}` }, t('doc.creditNote', { number: credit.data.number }))));
  }
  if (d.sourceDocumentId) {
    const source = await get(`/documents/${d.sourceDocumentId}`);
    if (source.ok) related.push(h('p', {}, `${d.documentType === 'credit_note' ? t('doc.cancels') : t('dtype.quote')} `, h('a', { href: `#/documents/${source.data.id}` }, source.data.number || '')));
  }
  clear(main,
    h('p', {}, h('a', { href: '#/documents' }, `← ${t('doc.title')}`)),
    h('section', { class: 'panel' },
      h('div', { class: 'page-head' },
        h('h1', {}, `${t(`dtype.${d.documentType}`)} `, h('span', { id: 'doc-number' }, d.number || t('doc.draft'))),
        h('span', { class: `badge st-${d.status}`, id: 'doc-status' }, t(`dstatus.${d.status}`))),
      h('dl', { class: 'facts' },
        h('dt', {}, t('doc.patient')), h('dd', {}, p ? h('a', { href: `#/patients/${p.id}` }, `${p.lastName.toUpperCase()} ${p.firstName}`) : '—'),
        h('dt', {}, t('doc.issueDate')), h('dd', {}, fmtDate(d.issueDate) || '—'),
        h('dt', {}, t('doc.dueDate')), h('dd', {}, fmtDate(d.dueDate) || '—')),
      related, error, linesTable(d),
      h('div', { class: 'actions' },
        w && d.status === 'draft' ? h('button', { type: 'button', class: 'primary', id: 'issue', onclick: status('sent') }, t('doc.issue')) : null,
        w && d.status === 'draft' ? h('button', { type: 'button', class: 'danger', onclick: act(async () => { const x = await del(`/documents/${id}`); if (x.ok) location.hash = '#/documents'; return x; }) }, t('common.delete')) : null,
        w && d.documentType === 'invoice' && d.status === 'sent' ? h('button', { type: 'button', onclick: status('paid') }, t('doc.paid')) : null,
        w && d.documentType === 'invoice' && ['sent', 'paid'].includes(d.status) ? h('button', { type: 'button', class: 'danger', id: 'cancel-invoice', onclick: () => confirm(t('doc.cancelConfirm')) && status('cancelled')() }, t('doc.cancelInvoice')) : null,
        w && d.documentType === 'quote' && d.status === 'sent' ? [h('button', { type: 'button', onclick: status('accepted') }, t('doc.accept')), h('button', { type: 'button', onclick: status('rejected') }, t('doc.reject'))] : null,
        w && d.documentType === 'quote' && d.status === 'accepted' ? h('button', { type: 'button', onclick: act(() => post(`/documents/${id}/convert`)) }, t('doc.convert')) : null,
        d.number ? h('a', { href: `#/documents/${id}/print`, class: 'button', id: 'printable' }, t('doc.printable')) : null)));
}

/** The clinic as its invoices must name it: name, postal address, SIRET and
 * VAT number (from its settings; what is missing is said), email, phone. */
function seller(c) {
  const s = c.settings || {};
  const a = s.address || {};
  const street = [a.line1, a.line2].filter(Boolean);
  const town = [a.postalCode, a.city].filter(Boolean).join(' ');
  const lines = street.length || town ? [...street, town, a.country && a.country !== c.country ? a.country : null]
    : [t('legal.missing', { what: t('legal.address') })];
  return h('div', { id: 'sheet-seller' }, h('p', { class: 'muted' }, t('legal.seller')), h('strong', {}, c.name || ''),
    h('address', {}, lines.filter(Boolean).map((line) => [line, h('br')])),
    h('p', { class: 'sheet-ids' }, [c.email, c.phone].filter(Boolean).map((x) => [x, h('br')]),
      s.siret ? t('legal.siret', { siret: s.siret.replace(/^(\d{3})(\d{3})(\d{3})(\d{5})$/, '$1 $2 $3 $4') }) : t('legal.missing', { what: t('s.siret') }), h('br'),
      s.vatNumber ? t('legal.vatNumber', { vat: s.vatNumber }) : null));
}

async function printable(main, id) {
  const [r, clinic] = await Promise.all([get(`/documents/${id}`), get('/clinic')]);
  if (!r.ok) { clear(main, banner(explain(r))); return; }
  const d = r.data;
  const p = await patientName(d.patientId);
  const c = clinic.ok ? clinic.data : {};
  const a = (p && p.address) || {};
  const exempt = d.items.every((i) => i.vatRate === 0);
  let source = null;
  if (d.sourceDocumentId) { const s = await get(`/documents/${d.sourceDocumentId}`); if (s.ok) source = s.data; }
  clear(main,
    h('div', { class: 'actions no-print' },
      h('a', { href: `#/documents/${id}`, class: 'button' }, `← ${t('common.back')}`),
      h('button', { type: 'button', class: 'primary', onclick: () => print() }, t('common.print'))),
    h('article', { class: 'sheet', id: 'printable-sheet' },
      h('header', { class: 'sheet-head' },
        seller(c),
        h('div', { class: 'right' }, h('h1', {}, `${t(`dtype.${d.documentType}`)} ${d.number || ''}`),
          h('p', {}, `${t('doc.issueDate')} : ${fmtDate(d.issueDate)}`),
          d.dueDate ? h('p', {}, `${t('doc.dueDate')} : ${fmtDate(d.dueDate)}`) : null,
          source ? h('p', {}, `${t('doc.cancels')} ${source.number}`) : null)),
      h('section', { class: 'sheet-client' }, h('p', { class: 'muted' }, t('legal.client')),
        p ? [h('strong', {}, `${p.firstName} ${p.lastName}`), h('br'), [a.line1, a.postalCode, a.city].filter(Boolean).join(', ')] : '—'),
      linesTable(d),
      h('footer', { class: 'legal' },
        exempt ? h('p', {}, t('legal.vatExempt')) : null,
        d.documentType !== 'quote' ? [h('p', {}, t('legal.payment')), h('p', {}, t('legal.late'))] : null)));
}
