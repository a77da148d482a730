/**
 * The few HTML pages the service renders. Inline scripts and styles are allowed by their hashes
 * only (see securityHeaders), so no page needs 'unsafe-inline'. Nothing secret is ever rendered.
 */
import { createHash } from 'node:crypto';
import type { Request, Response } from 'express';
import type { HandoffError } from '../errors.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}code{background:#f3f3f3;padding:0 .25rem;border-radius:3px}.muted{color:#666;font-size:.9rem}
button{font:inherit;padding:.4rem 1rem}`;

export function cspHash(source: string): string {
  return `'sha256-${createHash('sha256').update(source).digest('base64')}'`;
}

export function page(title: string, body: string, script = '', referrer = 'no-referrer'): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="${referrer}"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>${body}${script ? `<script>${script}</script>` : ''}</body></html>`;
}

export function errorPage(code: string, message: string, requestId: string): string {
  return page(
    'Cannot open the notebook',
    `<h1>Cannot open the notebook</h1><p>${escapeHtml(message)}</p>
<p class="muted">Error code <code>${escapeHtml(code)}</code> · request <code>${escapeHtml(requestId)}</code></p>`,
  );
}

/**
 * Reads `#token=` from the fragment (which browsers never send to servers, so it stays out of access
 * logs and Referer headers), removes it from the address bar and history, and POSTs it.
 */
export const FRAGMENT_SCRIPT = `(function(){var m=/(?:^#|&)token=([^&]+)/.exec(location.hash);
history.replaceState(null,'',location.pathname+location.search);
if(!m){document.getElementById('msg').textContent='This link has no handoff token. Open the notebook again from Immerse.';return;}
var f=document.getElementById('handoff');f.elements.token.value=decodeURIComponent(m[1]);f.submit();})();`;

/** An auto-submitting form; used by the fragment page and the dev demo (the form_post pattern Immerse uses). */
export function postForm(action: string, token: string | undefined, note: string): string {
  return `<h1>Opening your notebook…</h1><p id="msg">${escapeHtml(note)}</p>
<form id="handoff" method="post" action="${escapeHtml(action)}"><input type="hidden" name="token" value="${escapeHtml(token ?? '')}">
<noscript><button type="submit">Continue</button></noscript></form>`;
}

export const AUTOSUBMIT_SCRIPT = `document.getElementById('handoff').submit();`;

/**
 * The referrer policy of the pages that post to this service (a handoff, the confirmation): with
 * `no-referrer` a browser sends `Origin: null` on their POST, and over plain http to a host other than
 * localhost Chromium sends no Sec-Fetch-Site either, so the POST could not be told from another site's.
 * `same-origin` gives their own origin to this service only (a fragment is never part of a Referer).
 * Header and meta element alike: the meta element would override the header.
 */
export const SELF_POSTING = 'same-origin';

/** Sends a page whose form posts to this service, with the referrer policy that lets the POST name this origin. */
export function sendSelfPosting(res: Response, title: string, body: string, script = ''): void {
  res.set('Referrer-Policy', SELF_POSTING).type('html').send(page(title, body, script, SELF_POSTING));
}

/** Sends an error as JSON (Accept: application/json) or as an HTML page; never with secrets. */
export function sendError(req: Request, res: Response, err: HandoffError): void {
  const requestId = String(req.id ?? '');
  res.status(err.status);
  if (req.accepts(['html', 'json']) === 'json') {
    res.json({ error: err.code, message: err.message, requestId });
  } else {
    res.type('html').send(errorPage(err.code, err.message, requestId));
  }
}
