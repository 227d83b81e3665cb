// The agenda: a day or a week, for one practitioner or the whole clinic.
// Pick a free slot to book; pick an appointment to confirm, cancel, mark a
// no-show, move it or change its length (it spans the slots it covers), list
// its acts from the catalogue, add or remove one, and make a quote of them.
// With the pointer, an appointment is dragged to another slot (or another
// practitioner's column) and its bottom edge dragged to change its length,
// snapped to the slots; the panel's fields do both from the keyboard.
// A refused booking, move or length (409: overlap) is said in words, on the
// slot where it was asked.
// Times are the clinic's (its timezone from GET /clinic), not the browser's.

import { get, post, patch, del, qs } from './api.js';
import { t, explain, fmtTime, fmtDay, fmtDateTime, fmtMoney, zoned, fromZoned } from './i18n.js';
import { h, clear, field, input, select, banner } from './dom.js';
import { can } from './main.js';
import { patientPicker } from './patients.js';

const FIRST_HOUR = 8;
const LAST_HOUR = 19;
const SLOT_MINUTES = 30;
const state = { view: 'day', date: today(), practitionerId: '' };
const patientNames = new Map();
let moving = null;
// The appointment whose panel stays open across a redraw of the agenda.
let reopen = null;

// A day is a calendar day of the clinic: a Date at that day's UTC midnight.
function today() { const p = zoned(new Date()); return new Date(Date.UTC(p.y, p.m - 1, p.d)); }
function addDays(d, n) { const x = new Date(d); x.setUTCDate(x.getUTCDate() + n); return x; }
function monday(d) { return addDays(d, -((d.getUTCDay() + 6) % 7)); }
/** The instant `minutes` after midnight of `day`, on the clinic's clock. */
function at(day, minutes) { return fromZoned(day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), 0, minutes); }
const pad = (n) => String(n).padStart(2, '0');
/** An instant as a datetime-local value, on the clinic's clock. */
function localInput(instant) {
  const p = zoned(instant);
  return `${p.y}-${pad(p.m)}-${pad(p.d)}T${pad(p.hh)}:${pad(p.mm)}`;
}
/** A datetime-local value read on the clinic's clock. */
function fromInput(value) {
  const [y, m, d, hh, mm] = value.split(/[-T:]/).map(Number);
  return fromZoned(y, m, d, hh, mm);
}

async function all(path, params) {
  const rows = [];
  for (let offset = 0; ; offset += 100) {
    const r = await get(`${path}${qs({ ...params, limit: 100, offset })}`);
    if (!r.ok) return r;
    rows.push(...r.data);
    if (rows.length >= r.pagination.total || !r.data.length) return { ok: true, data: rows };
  }
}

async function names(ids) {
  const missing = [...new Set(ids)].filter((id) => !patientNames.has(id));
  await Promise.all(missing.map(async (id) => {
    const r = await get(`/patients/${id}`);
    patientNames.set(id, r.ok ? `${r.data.lastName.toUpperCase()} ${r.data.firstName}` : '—');
  }));
}

export async function render(main) {
  const pr = await all('/practitioners', {});
  if (!pr.ok) { clear(main, banner(explain(pr))); return; }
  let catalogueRows = null;
  const practitioners = pr.data.filter((p) => p.isActive !== false);
  const color = new Map(practitioners.map((p, i) => [p.id, `c${i % 6}`]));
  const prName = new Map(practitioners.map((p) => [p.id, `${p.firstName} ${p.lastName}`]));
  const panel = h('aside', { class: 'panel agenda-panel', id: 'agenda-panel', 'aria-live': 'polite' });
  const grid = h('div', { class: 'agenda-grid', id: 'agenda-grid' });

  const days = state.view === 'day' ? [state.date] : [0, 1, 2, 3, 4, 5].map((n) => addDays(monday(state.date), n));
  const from = at(days[0], 0);
  const to = at(addDays(days[days.length - 1], 1), 0);
  const shown = state.practitionerId ? practitioners.filter((p) => p.id === state.practitionerId) : practitioners;
  // Columns: practitioners on a day, days on a week.
  const columns = state.view === 'day'
    ? shown.map((p) => ({ day: state.date, practitioner: p, title: prName.get(p.id) }))
    : days.map((d) => ({ day: d, practitioner: state.practitionerId ? shown[0] : null, title: fmtDay(d) }));

  const viewSelect = select([['day', t('agenda.day')], ['week', t('agenda.week')]], { value: state.view, id: 'agenda-view' });
  viewSelect.addEventListener('change', () => { state.view = viewSelect.value; render(main); });
  const prSelect = select([['', t('agenda.allPractitioners')], ...practitioners.map((p) => [p.id, prName.get(p.id)])],
    { value: state.practitionerId, id: 'agenda-practitioner' });
  prSelect.addEventListener('change', () => { state.practitionerId = prSelect.value; render(main); });
  const step = state.view === 'day' ? 1 : 7;
  const go = (n) => { state.date = n === 0 ? today() : addDays(state.date, n * step); render(main); };
  const title = state.view === 'day'
    ? state.date.toLocaleDateString(document.documentElement.lang === 'en' ? 'en-GB' : 'fr-FR', { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' })
    : `${fmtDay(days[0])} – ${fmtDay(days[days.length - 1])}`;

  clear(main,
    h('div', { class: 'page-head' }, h('h1', {}, `${t('agenda.title')} · `, h('span', { id: 'agenda-title' }, title))),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', onclick: () => go(-1), 'aria-label': t('common.previous') }, '‹'),
      h('button', { type: 'button', onclick: () => go(0) }, t('common.today')),
      h('button', { type: 'button', onclick: () => go(1), 'aria-label': t('common.next') }, '›'),
      field(t('agenda.day') + ' / ' + t('agenda.week'), viewSelect),
      field(t('agenda.practitioner'), prSelect)),
    practitioners.length ? h('div', { class: 'agenda' }, grid, panel) : banner(t('agenda.noPractitioner'), 'info'));
  if (!practitioners.length) return done();

  const ap = await all('/appointments', { from: from.toISOString(), to: to.toISOString(), practitionerId: state.practitionerId });
  if (!ap.ok) { clear(grid, banner(explain(ap))); return done(); }
  const appts = ap.data;
  await names(appts.map((a) => a.patientId));

  grid.style.gridTemplateColumns = `4.5rem repeat(${columns.length}, minmax(8rem, 1fr))`;
  grid.append(h('div', { class: 'corner' }), ...columns.map((c) => h('div', { class: 'col-head' }, c.title)));
  for (let minutes = FIRST_HOUR * 60; minutes < LAST_HOUR * 60; minutes += SLOT_MINUTES) {
    grid.append(h('div', { class: 'time' }, `${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`));
    for (const c of columns) {
      const start = at(c.day, minutes);
      const end = new Date(start.getTime() + SLOT_MINUTES * 60000);
      const here = appts.filter((a) => {
        const s = new Date(a.startAt);
        return s >= start && s < end && (!c.practitioner || a.practitionerId === c.practitioner.id);
      });
      const cell = h('div', { class: 'slot', 'data-start': start.toISOString(), 'data-col': columns.indexOf(c) },
        here.map((a) => h('button', {
          type: 'button', class: `appt ${color.get(a.practitionerId) || ''} st-${a.status}`, 'data-appt': a.id,
          onclick: () => showAppointment(a),
        }, h('span', { class: 'appt-time' }, `${fmtTime(new Date(a.startAt))}–${fmtTime(new Date(a.endAt))}`),
        ` ${patientNames.get(a.patientId) || ''}`,
        c.practitioner ? null : h('span', { class: 'appt-pr' }, prName.get(a.practitionerId)),
        h('span', { class: 'appt-status' }, t(`astatus.${a.status}`)),
        new Date(a.endAt) <= end ? edge(a) : null)));
      // The slots an appointment started earlier still covers.
      for (const a of appts) {
        const s = new Date(a.startAt);
        const e = new Date(a.endAt);
        if (s < start && e > start && (!c.practitioner || a.practitionerId === c.practitioner.id)) {
          cell.append(h('div', {
            class: `appt-cont ${color.get(a.practitionerId) || ''} st-${a.status}`, 'data-appt': a.id,
            title: `${fmtTime(s)}–${fmtTime(e)} ${patientNames.get(a.patientId) || ''}`,
          }, e <= end ? edge(a) : null));
        }
      }
      if (can('write')) {
        cell.append(h('button', {
          type: 'button', class: 'free', 'data-slot': localInput(start), 'data-practitioner': c.practitioner ? c.practitioner.id : '',
          'aria-label': `${t('agenda.slot', { time: fmtTime(start) })} ${c.title}`,
          onclick: () => (moving ? moveTo(moving, start, c.practitioner, cell) : book(start, c.practitioner, cell)),
        }, '+'));
      }
      grid.append(cell);
    }
  }
  if (can('write')) grid.addEventListener('pointerdown', grab);
  const again = reopen && appts.find((a) => a.id === reopen);
  reopen = null;
  if (again) showAppointment(again); else clear(panel, h('p', { class: 'muted' }, can('write') ? t('agenda.hint') : ''));
  return done();

  function done() {
    performance.mark('agenda-rendered');
    document.body.setAttribute('data-ready', 'agenda');
  }

  function live(a) { return !['cancelled', 'completed', 'no_show'].includes(a.status); }

  /** The bottom edge of an appointment's last slot: dragged, it changes the length. */
  function edge(a) {
    return can('write') && live(a) ? h('span', { class: 'resize-handle', 'aria-hidden': 'true', title: t('agenda.resizeHandle') }) : null;
  }

  // Dragging: a press on an appointment that travels a few pixels becomes a
  // move (or, from its bottom edge, a resize); the slot under the pointer at
  // release is the target. A press that does not travel stays a click.
  function grab(event) {
    const piece = event.button === 0 && event.target.closest('[data-appt]');
    const a = piece && appts.find((x) => x.id === piece.dataset.appt);
    if (!a || !live(a)) return;
    const from = piece.closest('.slot');
    const first = grid.querySelector(`.appt[data-appt="${a.id}"]`);
    const drag = {
      a, resize: !!event.target.closest('.resize-handle'), x: event.clientX, y: event.clientY, started: false,
      // Whole slots between the appointment's first slot and the one grabbed.
      offset: first ? Math.round((new Date(from.dataset.start) - new Date(first.closest('.slot').dataset.start)) / (SLOT_MINUTES * 60000)) : 0,
      col: first ? first.closest('.slot').dataset.col : from.dataset.col,
      target: null,
    };
    const target = (e) => {
      const cell = document.elementFromPoint(e.clientX, e.clientY);
      const slot = cell && cell.closest('.slot');
      return slot && grid.contains(slot) && (!drag.resize || slot.dataset.col === drag.col) ? slot : null;
    };
    const move = (e) => {
      if (!drag.started && Math.hypot(e.clientX - drag.x, e.clientY - drag.y) < 6) return;
      drag.started = true;
      grid.classList.add(drag.resize ? 'resizing' : 'dragging');
      const slot = target(e);
      if (slot !== drag.target) {
        if (drag.target) drag.target.classList.remove('drop-target');
        if (slot) slot.classList.add('drop-target');
        drag.target = slot;
      }
    };
    const up = (e) => {
      removeEventListener('pointermove', move);
      removeEventListener('pointerup', up);
      removeEventListener('pointercancel', cancel);
      grid.classList.remove('dragging', 'resizing');
      if (drag.target) drag.target.classList.remove('drop-target');
      if (!drag.started) return;
      // The click that follows a drag is not a pick.
      const swallow = (c) => { c.stopPropagation(); c.preventDefault(); };
      grid.addEventListener('click', swallow, { capture: true, once: true });
      setTimeout(() => grid.removeEventListener('click', swallow, { capture: true }));
      const slot = target(e);
      if (slot) dropped(drag, slot);
    };
    const cancel = () => { drag.started = false; up({}); };
    addEventListener('pointermove', move);
    addEventListener('pointerup', up);
    addEventListener('pointercancel', cancel);
  }

  async function dropped({ a, resize, offset }, slot) {
    const slotStart = new Date(slot.dataset.start);
    const column = columns[Number(slot.dataset.col)];
    const practitionerId = column.practitioner && !resize ? column.practitioner.id : a.practitionerId;
    let r;
    if (resize) {
      const endAt = new Date(slotStart.getTime() + SLOT_MINUTES * 60000);
      if (endAt <= new Date(a.startAt) || endAt.getTime() === new Date(a.endAt).getTime()) return;
      r = await patch(`/appointments/${a.id}`, { endAt: endAt.toISOString() });
    } else {
      const start = new Date(slotStart.getTime() - offset * SLOT_MINUTES * 60000);
      if (start.getTime() === new Date(a.startAt).getTime() && practitionerId === a.practitionerId) return;
      r = await move(a, start, practitionerId);
    }
    if (r.ok) { reopen = a.id; render(main); } else slotError(slot, r, practitionerId);
  }

  function slotError(cell, r, practitionerId) {
    for (const old of grid.querySelectorAll('.slot-error')) old.remove();
    for (const old of grid.querySelectorAll('.refused')) old.classList.remove('refused');
    const text = r.status === 409 ? t('agenda.overlap', { who: prName.get(practitionerId) || '' }) : explain(r);
    cell.classList.add('refused');
    cell.append(h('p', { class: 'slot-error', role: 'alert' }, text));
    return text;
  }

  function book(start, practitioner, cell) {
    let patient = null;
    const picker = patientPicker((p) => { patient = p; });
    const prChoice = select(practitioners.map((p) => [p.id, prName.get(p.id)]), { value: practitioner ? practitioner.id : practitioners[0].id });
    const when = input({ type: 'datetime-local', value: localInput(start), step: 300 });
    const duration = select([15, 20, 30, 45, 60].map((n) => [String(n), `${n}`]), { value: '30' });
    const reason = input({});
    const error = h('div');
    const form = h('form', { id: 'booking-form', novalidate: true },
      h('h2', {}, t('agenda.bookAt', { when: fmtDateTime(start.toISOString()) })),
      error,
      field(t('agenda.patient'), picker.control, 'patientId'), picker.list,
      field(t('agenda.practitioner'), prChoice, 'practitionerId'),
      h('div', { class: 'row' }, field(t('agenda.moveTo'), when, 'startAt'), field(t('agenda.duration'), duration)),
      field(t('agenda.reason'), reason, 'reason'),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('common.create')),
        h('button', { type: 'button', onclick: () => clear(panel) }, t('common.cancel'))));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!patient) { clear(error, banner(t('agenda.pickPatient'))); picker.control.focus(); return; }
      const s = fromInput(when.value);
      const body = {
        patientId: patient.id, practitionerId: prChoice.value, startAt: s.toISOString(),
        endAt: new Date(s.getTime() + Number(duration.value) * 60000).toISOString(),
      };
      if (reason.value.trim()) body.reason = reason.value.trim();
      const r = await post('/appointments', body);
      if (r.ok) { render(main); return; }
      clear(error, banner(slotError(cell, r, prChoice.value)));
    });
    clear(panel, form);
    picker.control.focus();
  }

  function showAppointment(a) {
    moving = null;
    const error = h('div');
    const setStatus = (status) => async () => {
      const r = await patch(`/appointments/${a.id}`, { status });
      if (r.ok) render(main); else clear(error, banner(explain(r)));
    };
    const when = input({ type: 'datetime-local', value: localInput(new Date(a.startAt)), step: 300 });
    const who = select(practitioners.map((p) => [p.id, prName.get(p.id)]), { value: a.practitionerId });
    const moveForm = h('form', { id: 'move-form', class: 'inline-form' },
      field(t('agenda.moveTo'), when, 'startAt'), field(t('agenda.practitioner'), who, 'practitionerId'),
      h('button', { type: 'submit' }, t('agenda.move')));
    moveForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const r = await move(a, fromInput(when.value), who.value);
      if (r.ok) { reopen = a.id; render(main); } else clear(error, banner(r.status === 409 ? t('agenda.overlap', { who: prName.get(who.value) }) : explain(r)));
    });
    const minutes = Math.round((new Date(a.endAt) - new Date(a.startAt)) / 60000);
    const length = input({ type: 'number', min: 5, max: 720, step: 5, value: String(minutes) });
    const resizeForm = h('form', { id: 'resize-form', class: 'inline-form' },
      field(t('agenda.duration'), length, 'duration'), h('button', { type: 'submit' }, t('agenda.resize')));
    resizeForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const n = Number(length.value);
      if (!(n >= 5)) { length.focus(); return; }
      const r = await patch(`/appointments/${a.id}`, { endAt: new Date(new Date(a.startAt).getTime() + n * 60000).toISOString() });
      if (r.ok) { reopen = a.id; render(main); return; }
      clear(error, banner(r.status === 409 ? t('agenda.overlap', { who: prName.get(a.practitionerId) || '' }) : explain(r)));
    });
    const items = h('section', { id: 'appt-items', class: 'appt-items' }, h('h3', {}, t('items.title')), h('p', { class: 'muted' }, t('common.loading')));
    clear(panel,
      h('h2', {}, patientNames.get(a.patientId) || ''),
      h('p', {}, `${fmtDateTime(a.startAt)} – ${fmtTime(new Date(a.endAt))} · ${prName.get(a.practitionerId) || ''}`),
      h('p', { class: 'muted', id: 'appt-length' }, t('agenda.length', { n: minutes })),
      h('p', {}, `${t('common.status')} : `, h('strong', { id: 'appt-status' }, t(`astatus.${a.status}`))),
      a.reason ? h('p', {}, a.reason) : null,
      h('p', {}, h('a', { href: `#/patients/${a.patientId}` }, t('patients.title'))),
      error,
      can('write') && live(a) ? [
        h('div', { class: 'actions' },
          a.status === 'scheduled' ? h('button', { type: 'button', onclick: setStatus('confirmed') }, t('agenda.confirm')) : null,
          h('button', { type: 'button', onclick: setStatus('completed') }, t('agenda.complete')),
          h('button', { type: 'button', onclick: setStatus('no_show') }, t('agenda.noShow')),
          h('button', { type: 'button', class: 'danger', onclick: setStatus('cancelled') }, t('agenda.cancelAppt'))),
        h('button', { type: 'button', id: 'move-pick', onclick: () => {
          moving = a;
          clear(error, banner(t('agenda.movePick'), 'info'));
        } }, t('agenda.movePickButton')),
        moveForm, resizeForm] : null,
      items);
    showItems(a, items);
  }

  // The appointment's acts: listed, added from the catalogue, removed, and
  // made into a quote (a draft, prefilled with them).
  async function showItems(a, box) {
    const [r, catalogue] = await Promise.all([get(`/appointments/${a.id}/items`), products()]);
    const head = h('h3', {}, t('items.title'));
    if (!r.ok) { clear(box, head, banner(explain(r))); return; }
    const rows = r.data;
    const error = h('div');
    const reload = () => showItems(a, box);
    const w = can('write');
    const total = rows.reduce((sum, i) => sum + i.unitPriceCents * i.quantity, 0);
    const list = rows.length ? h('table', { class: 'table items' }, h('tbody', {}, rows.map((i) => h('tr', {},
      h('td', {}, i.description), h('td', { class: 'num' }, `× ${i.quantity}`), h('td', { class: 'num' }, fmtMoney(i.unitPriceCents * i.quantity)),
      w ? h('td', {}, h('button', { type: 'button', class: 'link', 'aria-label': t('items.remove', { what: i.description }), onclick: async () => {
        const x = await del(`/appointments/${a.id}/items/${i.id}`);
        if (x.ok) reload(); else clear(error, banner(explain(x)));
      } }, '×')) : null))),
    h('tfoot', {}, h('tr', {}, h('td', { colspan: w ? 4 : 3, class: 'num', id: 'items-total' }, t('items.total', { total: fmtMoney(total) })))))
      : h('p', { class: 'muted' }, t('items.none'));
    let add = null;
    if (w && !['cancelled', 'no_show'].includes(a.status)) {
      if (!catalogue.length) add = h('p', { class: 'muted' }, t('items.noCatalogue'));
      else {
        const act = select(catalogue.map((p) => [p.id, `${p.name} (${fmtMoney(p.unitPriceCents)})`]));
        const quantity = input({ type: 'number', min: 1, max: 10000, value: '1' });
        add = h('form', { id: 'item-form', novalidate: true },
          h('div', { class: 'row' }, field(t('items.act'), act, 'productServiceId'), h('div', { class: 'field qty' }, field(t('items.quantity'), quantity, 'quantity'))),
          h('button', { type: 'submit' }, t('items.add')));
        add.addEventListener('submit', async (event) => {
          event.preventDefault();
          const x = await post(`/appointments/${a.id}/items`, { productServiceId: act.value, quantity: Number(quantity.value) || 1 });
          if (x.ok) reload(); else clear(error, banner(explain(x)));
        });
      }
    }
    const quote = w && rows.length ? h('button', { type: 'button', class: 'primary', id: 'quote-from-items', onclick: async () => {
      const x = await post('/documents', {
        documentType: 'quote', patientId: a.patientId,
        items: rows.map((i) => ({ description: i.description, quantity: i.quantity, unitPriceCents: i.unitPriceCents, vatRate: i.vatRate, productServiceId: i.productServiceId })),
      });
      if (x.ok) location.hash = `#/documents/${x.data.id}`; else clear(error, banner(explain(x)));
    } }, t('items.quote')) : null;
    clear(box, head, error, list, add, quote);
  }

  async function products() {
    if (!catalogueRows) {
      const r = await all('/products-services', {});
      catalogueRows = r.ok ? r.data.filter((p) => p.isActive !== false) : [];
    }
    return catalogueRows;
  }

  /** Moves `a` to `start`, keeping its length, and to `practitionerId` when it differs. */
  function move(a, start, practitionerId = a.practitionerId) {
    const length = new Date(a.endAt) - new Date(a.startAt);
    const body = { startAt: start.toISOString(), endAt: new Date(start.getTime() + length).toISOString() };
    if (practitionerId !== a.practitionerId) body.practitionerId = practitionerId;
    return patch(`/appointments/${a.id}`, body);
  }

  async function moveTo(a, start, practitioner, cell) {
    moving = null;
    const practitionerId = practitioner ? practitioner.id : a.practitionerId;
    const r = await move(a, start, practitionerId);
    if (r.ok) render(main); else slotError(cell, r, practitionerId);
  }
}
