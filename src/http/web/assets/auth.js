// Sign in and sign up.

import { login, register } from './api.js';
import { t } from './i18n.js';
import { h, field, input, banner, refusal, formValues } from './dom.js';

function frame(title, ctx, form, switchTo) {
  return h('div', { class: 'auth' },
    h('div', { class: 'auth-box' },
      h('div', { class: 'auth-head' }, h('h1', {}, `MedicalPro · ${title}`),
        h('button', { type: 'button', class: 'link', onclick: ctx.onLang }, t('lang.switch'))),
      ctx.notice ? banner(ctx.notice, 'info') : null,
      form,
      h('p', {}, switchTo)));
}

async function submitting(form, work) {
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try { await work(); } finally { button.disabled = false; form.removeAttribute('aria-busy'); }
}

function showError(form, r) {
  const slot = form.querySelector('.form-error');
  slot.replaceChildren(refusal(form, r));
}

export function loginView(ctx) {
  const form = h('form', { id: 'login-form', novalidate: true },
    h('div', { class: 'form-error' }),
    field(t('auth.email'), input({ type: 'email', autocomplete: 'username', required: true, autofocus: true }), 'email'),
    field(t('auth.password'), input({ type: 'password', autocomplete: 'current-password', required: true }), 'password'),
    h('button', { type: 'submit', class: 'primary' }, t('auth.submit')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, async () => {
      const { email, password } = formValues(form);
      const r = await login(email, password);
      if (r.ok) await ctx.onSignedIn(); else showError(form, r);
    });
  });
  return frame(t('auth.login'), ctx, form, h('a', { href: '#/register' }, t('auth.toRegister')));
}

export function registerView(ctx) {
  const form = h('form', { id: 'register-form', novalidate: true },
    h('div', { class: 'form-error' }),
    field(t('auth.clinicName'), input({ required: true, autofocus: true, autocomplete: 'organization' }), 'clinicName'),
    h('div', { class: 'row' },
      field(t('auth.firstName'), input({ required: true, autocomplete: 'given-name' }), 'firstName'),
      field(t('auth.lastName'), input({ required: true, autocomplete: 'family-name' }), 'lastName')),
    field(t('auth.email'), input({ type: 'email', required: true, autocomplete: 'email' }), 'email'),
    field(t('auth.phone'), input({ type: 'tel', autocomplete: 'tel' }), 'phone'),
    field(`${t('auth.password')} (${t('auth.passwordHint')})`, input({ type: 'password', required: true, autocomplete: 'new-password', minlength: 8 }), 'password'),
    h('button', { type: 'submit', class: 'primary' }, t('auth.create')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, async () => {
      const body = formValues(form);
      if (!body.phone) delete body.phone;
      body.country = 'FR';
      const r = await register(body);
      if (r.ok) await ctx.onSignedIn(); else showError(form, r);
    });
  });
  return frame(t('auth.register'), ctx, form, h('a', { href: '#/login' }, t('auth.toLogin')));
}
