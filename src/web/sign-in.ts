/**
 * Who the browser is at the hub, and the two gates built on it (./landing/hub.ts runs them in
 * `prepare`). Both park the verified handoff in a ticket (../hub/tickets.ts) bound to the browser, after
 * spending its jti, and resume it when the browser comes back — on whichever replica it reaches.
 *
 * - Confirmation (login mode `handoff`, login CSRF): a browser the service does not know as the
 *   handed-over user is shown a page naming that user before it is logged in at the hub; one known
 *   as someone else always is, one known as nobody unless hub.confirmLogin is off.
 * - Identity check (hub.identityCheck): the service asks the hub, as its OAuth client (authorization
 *   code grant, as JupyterHub's HubOAuth does), who the browser is; a handoff for anyone else is
 *   refused with identity_mismatch.
 *
 * What the service knows of a browser is a sealed `known` cookie: the user it was last logged in as
 * by this service or confirmed as by the hub, and until when that check counts (identityMaxAgeSeconds).
 */
import type { Request, RequestHandler, Response } from 'express';
import type { Config } from '../config/types.js';
import { HandoffError } from '../errors.js';
import type { HubClient } from '../hub/client.js';
import { bindingOf, randomValue, useOnce, type Ticket, type Tickets } from '../hub/tickets.js';
import type { SessionStore } from '../store/types.js';
import { cookie, setCookie } from './cookie.js';
import { escapeHtml, sendError, sendSelfPosting } from './pages.js';
import { isOwnPageClick } from './security.js';
import type { HandoffContext, Resume } from './pipeline.js';

/** Like HubOAuth's oauth_state_max_age: long enough for a login at the identity provider. */
const PARK_MS = 10 * 60_000;
/** Like JupyterHub's cookie_max_age_days (14): the hub login this service made lasts about as long. */
const KNOWN_MS = 14 * 24 * 3600_000;
const KNOWN_COOKIE = 'ohu';
const BROWSER_COOKIE = 'ohb';
const BROWSER_MS = 24 * 3600_000;

export interface SignInOptions {
  config: Config;
  client: HubClient;
  tickets: Tickets;
  store: Pick<SessionStore, 'spend'>;
  /**
   * Login mode `handoff`: the hub login URL (a login token for `user`, for the browser whose binding is
   * `bind`) that continues to `next`. A browser without a hub session is logged in as the handed-over
   * user on its way to authorize; one with a session keeps it (the hub skips the login), so its
   * identity is what gets compared.
   */
  hubLogin?: (user: string, next: string, bind: string) => string;
  now?: () => number;
}

export interface SignIn {
  /** The browser's binding for tickets only it may use (a random cookie, set when missing). */
  bindBrowser(req: Request, res: Response): string;
  /** True when the ticket was bound to this browser (or to none). */
  boundTo(req: Request, bind: string | undefined): boolean;
  /** Login mode `handoff`: the confirmation gate. */
  confirm(ctx: HandoffContext): Promise<'deferred' | undefined>;
  /** hub.identityCheck: the identity gate. */
  checkIdentity(ctx: HandoffContext): Promise<'deferred' | undefined>;
  /** Remembers that this browser is being logged in at the hub as the handoff's user (unless the hub just confirmed it). */
  loggedIn(ctx: HandoffContext): void;
  /** POST confirm (the confirmation page's button) and GET oauth_callback (the hub's answer), continuing with `resume`. */
  handlers(resume: Resume): { confirm: RequestHandler; callback: RequestHandler };
}

export function createSignIn(o: SignInOptions): SignIn {
  const { config, client, tickets, store } = o;
  const now = o.now ?? Date.now;
  const hub = config.hub;
  const base = config.listen.basePath;
  const hubUrl = new URL(config.redirect.hubPublicUrl);
  const authorizePath = `${hubUrl.pathname.replace(/\/+$/, '')}/hub/api/oauth2/authorize`;

  const known = (req: Request) => {
    const c = cookie(req, KNOWN_COOKIE);
    return c ? tickets.open('known', c) : undefined;
  };
  const remember = (req: Request, res: Response, user: string, checked: boolean) => {
    const prev = known(req);
    const checkedUntil = checked ? now() + hub.identityMaxAgeSeconds * 1000 : prev?.user === user ? prev.checkedUntil : undefined;
    const body = checkedUntil ? { checkedUntil } : {};
    setCookie(req, res, KNOWN_COOKIE, tickets.issue('known', user, KNOWN_MS, body).ticket, base, KNOWN_MS, true);
  };

  const bindBrowser = (req: Request, res: Response) => {
    const current = cookie(req, BROWSER_COOKIE);
    const value = current && /^[A-Za-z0-9_-]{43}$/.test(current) ? current : randomValue();
    setCookie(req, res, BROWSER_COOKIE, value, base, BROWSER_MS, true);
    return bindingOf(value);
  };
  const boundTo = (req: Request, bind: string | undefined) => {
    if (bind === undefined) return true;
    const value = cookie(req, BROWSER_COOKIE);
    return value !== undefined && bindingOf(value) === bind;
  };

  /** Parks the handoff in a ticket bound to this browser (`bind`), its jti spent first: a used token is never parked. */
  async function park(ctx: HandoffContext): Promise<{ ticket: string; bind: string }> {
    await ctx.reserve();
    const { handoff, req, res, confirmed } = ctx;
    const bind = bindBrowser(req, res);
    return { ticket: tickets.issue('parked', handoff.user, PARK_MS, { handoff, confirmed, bind }).ticket, bind };
  }

  /** The parked handoff of a ticket, if it is this browser's and not used before (on any replica). */
  async function unpark(req: Request, ticket: unknown): Promise<Ticket<'parked'> | undefined> {
    const t = typeof ticket === 'string' ? tickets.open('parked', ticket) : undefined;
    if (!t || !boundTo(req, t.bind)) return undefined;
    return (await useOnce(store, 'parked', t)) ? t : undefined;
  }

  return {
    bindBrowser,
    boundTo,

    async confirm(ctx) {
      const user = ctx.handoff.user;
      const k = known(ctx.req)?.user;
      if (ctx.confirmed || k === user || (k === undefined && !hub.confirmLogin)) return undefined;
      const { ticket } = await park(ctx);
      sendSelfPosting(ctx.res, 'Open your notebook?', confirmPage(user, k, `${base}confirm`, ticket));
      return 'deferred';
    },

    async checkIdentity(ctx) {
      const user = ctx.handoff.user;
      const k = known(ctx.req);
      if (ctx.hubIdentity === user || (k?.user === user && (k.checkedUntil ?? 0) > now())) return undefined;
      const { ticket: state, bind } = await park(ctx);
      const authorize = `${authorizePath}?${new URLSearchParams({ client_id: hub.oauthClientId!, redirect_uri: hub.oauthRedirectUri!, response_type: 'code', state })}`;
      ctx.res.redirect(303, o.hubLogin ? o.hubLogin(user, authorize, bind) : new URL(authorize, hubUrl).toString());
      return 'deferred';
    },

    loggedIn({ req, res, handoff, hubIdentity }) {
      if (hubIdentity !== handoff.user) remember(req, res, handoff.user, false);
    },

    handlers: (resume) => ({
      async confirm(req, res) {
        // Its button, clicked by the user: not a POST from another site, nor a script's on the hub's origin.
        const t = isOwnPageClick(req) ? await unpark(req, (req.body as Record<string, unknown> | undefined)?.ticket) : undefined;
        if (!t) return sendError(req, res, new HandoffError('identity_state_invalid'));
        await resume({ handoff: t.handoff, confirmed: true }, req, res);
      },
      async callback(req, res) {
        const t = await unpark(req, req.query.state);
        if (!t) return sendError(req, res, new HandoffError('identity_state_invalid'));
        await resume({ handoff: t.handoff, confirmed: t.confirmed === true }, req, res, async (ctx) => {
          const code = req.query.code;
          // e.g. error=access_denied when the user declined the hub's confirmation page.
          if (typeof code !== 'string' || !code)
            throw new HandoffError('hub_rejected', `OAuth authorize: ${typeof req.query.error === 'string' ? req.query.error : 'no code'}`);
          const hubUser = await client.userOf(await client.oauthToken(code, hub.oauthClientId!, hub.oauthRedirectUri!));
          if (hubUser !== t.user) {
            throw new HandoffError('identity_mismatch', `the browser is logged in to the hub as ${hubUser}`, {
              message: `You are logged in to JupyterHub as ${hubUser}, but Immerse handed over ${t.user}. Log out of JupyterHub and open the notebook again from Immerse.`,
            });
          }
          ctx.hubIdentity = hubUser;
          remember(req, res, hubUser, true);
        });
      },
    }),
  };
}

/**
 * The body of the confirmation page of login mode `handoff` (login CSRF): names the user the browser
 * is about to be logged in to the hub as, and, when it is known as someone else, that user too. Its
 * button posts the parked handoff's ticket (sealed: it shows nothing) to {base}confirm.
 */
function confirmPage(user: string, knownAs: string | undefined, action: string, ticket: string): string {
  const other = knownAs
    ? `<p id="other">This browser last opened notebooks as <b>${escapeHtml(knownAs)}</b>. Continuing logs it in to JupyterHub as <b>${escapeHtml(user)}</b> instead.</p>`
    : '';
  return `<h1>Open the notebook as ${escapeHtml(user)}?</h1>
<p>Immerse handed over an OmniSci session of <b id="user">${escapeHtml(user)}</b>. Continue only if you just opened the notebook from your own Immerse.</p>${other}
<form method="post" action="${escapeHtml(action)}"><input type="hidden" name="ticket" value="${escapeHtml(ticket)}"><button type="submit" id="confirm">Continue as ${escapeHtml(user)}</button></form>
<p class="muted">Did not open it yourself? Close this page: nothing has been stored.</p>`;
}
