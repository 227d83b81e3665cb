// Building the page with DOM calls only (never HTML strings), so that no
// text coming from the API can become markup.

import { explain, fieldMessage } from './i18n.js';

/** h('button', {class: 'x', onclick: f}, 'text', child, [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'value') el.value = value;
    else if (key === 'checked') el.checked = !!value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
/** A labelled field: label, control, and a slot for its error. */
export function field(label, control, name) {
  const id = control.id || `f${++uid}`;
  control.id = id;
  if (name) control.name = name;
  const error = h('p', { class: 'field-error', id: `${id}-error`, role: 'alert' });
  control.setAttribute('aria-describedby', error.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, error);
}

export function input(attrs) {
  return h('input', { type: 'text', ...attrs });
}

export function select(options, attrs) {
  return h('select', attrs || {}, options.map(([value, text]) =>
    h('option', { value, selected: attrs && attrs.value === value }, text)));
}

/** Shows 422 `details` next to the fields of `form` (by `name`), in the
 * page's language; returns what no field took. */
export function showFieldErrors(form, details) {
  for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const rest = [];
  let first = null;
  for (const detail of details || []) {
    const control = form.querySelector(`[name="${CSS.escape(detail.field || '')}"]`);
    if (!control) { rest.push(detail); continue; }
    control.setAttribute('aria-invalid', 'true');
    const slot = document.getElementById(`${control.id}-error`);
    if (slot) slot.textContent = fieldMessage(detail);
    first = first || control;
  }
  if (first) first.focus();
  return rest;
}

/** A refused submission of `form` in words: a 422's details next to their
 * fields, the rest (and any other refusal) in the banner returned. */
export function refusal(form, r) {
  const rest = r.error.code === 'validation_failed' ? showFieldErrors(form, r.error.details) : [];
  return banner([explain(r), ...rest.map((d) => ` ${d.field} : ${fieldMessage(d)}`)].join(''));
}

/** Reads the named controls of a form; empty text becomes absent. */
export function formValues(form) {
  const values = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.dataset.group !== undefined) {
      // A group of checkboxes sharing one name: the list of those checked.
      values[el.name] = [...(values[el.name] || []), ...(el.checked ? [el.value] : [])];
      continue;
    }
    const v = el.type === 'checkbox' ? el.checked : el.value.trim();
    values[el.name] = v;
  }
  return values;
}

export function banner(text, kind = 'error') {
  return h('p', { class: `banner ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}
