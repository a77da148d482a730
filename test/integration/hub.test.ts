/**
 * The JupyterHub landing against a real JupyterHub 5 (scripts/deps/jupyterhub.sh): the service runs
 * with exactly the documented role (servers + admin:users for the auto-creating instance, servers
 * alone for another), concurrent_spawn_limit 1, a slow and a failing spawner variant, and the
 * shipped authenticator for login mode `handoff`. Browsers here are cookie-keeping HTTP clients
 * without JavaScript (the page's no-JS fallback); test/integration/hub-browser.test.ts uses Chromium.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { randomSessionId } from '../../src/handoff/mint.js';
import { hmacKey, mint, postToken } from '../support/core.js';
import { NoJsBrowser, runningLab, startHubService, type HubService } from '../support/hub-service.js';
import { freePort, SERVICE_SCOPES, SERVICE_SCOPES_CREATE, SHIPPED_AUTHENTICATOR, startHub, waitFor, type RunningHub } from '../support/jupyterhub.js';

jest.setTimeout(120_000);
const key = hmacKey('HS256');
const PREFIX = '/services/omnisci-handoff/';
const labOf = (hub: RunningHub, user: string) => `${hub.publicUrl}/user/${user}/lab?omnisci&reset`;

let hub: RunningHub;
/** Auto-creating, login mode `handoff`, reached through the hub proxy like in z2jh. */
let svc: HubService;
/** Login mode `sso`, users must exist, role `servers` only. */
let sso: HubService;

beforeAll(async () => {
  const port = await freePort();
  hub = await startHub({
    serviceScopes: SERVICE_SCOPES_CREATE,
    serviceUrl: `http://127.0.0.1:${port}`,
    extraServices: { 'servers-only': SERVICE_SCOPES },
    concurrentSpawnLimit: 1,
    slowSeconds: 2,
    users: ['sam', 'held-pending'],
    extraConfig: `
${SHIPPED_AUTHENTICATOR}`,
  });
  svc = await startHubService({ hub, port, basePath: PREFIX, hubConfig: { createUsers: true, loginMode: 'handoff' } });
  sso = await startHubService({ hub, apiToken: hub.extraTokens['servers-only']!, hubConfig: { spawnTimeoutSeconds: 60 } });
});

afterAll(async () => {
  await svc?.close();
  await sso?.close();
  await hub?.stop();
});

async function server(user: string) {
  const r = await hub.admin('GET', `/users/${user}`);
  return (r.json as { servers?: Record<string, { ready: boolean; pending: string | null; started: string }> }).servers?.[''];
}

/** Reads the progress SSE stream of a progress page URL until it ends; returns the messages. */
/** The progress page's SSE messages to the end of the stream; `onEvent` sees each as it arrives. */
async function sseMessages(browser: NoJsBrowser, progressUrl: string, onEvent: (e: { phase: string; message: string }) => void = () => undefined): Promise<{ phase: string; message: string }[]> {
  const res = await browser.request(`${progressUrl}/events`);
  expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
  const events: { phase: string; message: string }[] = [];
  let buffered = '';
  for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (!block.startsWith('data: ')) continue;
      const e = JSON.parse(block.slice(6)) as { phase: string; message: string };
      events.push(e);
      onEvent(e);
    }
  }
  return events;
}

describe('handoff to a real JupyterHub', () => {
  test('first handoff creates the user, spawns, logs in through /hub/login and lands on the lab with ?omnisci&reset', async () => {
    expect((await hub.admin('GET', '/users/newbie')).status).toBe(404);
    const b = new NoJsBrowser();
    const end = await b.postHandoff(svc.url, await mint(key, { subject: 'newbie' }));
    expect(end.status).toBe(200);
    expect(end.url).toBe(labOf(hub, 'newbie'));
    // A browser the service does not know yet confirmed the sign-in first (login CSRF defence).
    expect(b.confirmations).toBe(1);
    expect(end.text).toContain('<p id=path>/user/newbie/lab?omnisci&reset</p>');
    expect((await server('newbie'))?.ready).toBe(true);
    // The hub login happened: the hub knows this browser as newbie.
    const home = await b.request(`${hub.publicUrl}/hub/home`);
    expect(home.status).toBe(200);
    expect(await home.text()).toContain('newbie');
    // The progress page and its URL carried no token; the login token was used once.
    const login = b.hops.find((h) => h.url.includes('/hub/login?login_token='))!;
    expect(login).toBeDefined();
    expect(b.hops.filter((h) => h.url.includes(PREFIX + 'progress/')).every((h) => !/token|session/i.test(h.url))).toBe(true);
    // Replayed in another browser it logs nobody in: the login URL is bound to this browser.
    const other = new NoJsBrowser();
    const replay = await other.follow(await other.request(login.url), login.url);
    expect(replay.status).toBe(403);
    expect(replay.text).toContain('login_browser_mismatch');
    expect(svc.logs.lines.join('\n')).not.toContain(new URL(login.url).searchParams.get('login_token')!);
    // One hub login per handoff: visiting the progress page's link again leads to the lab, with no new login token.
    const progress = b.hops.find((h) => new URL(h.url).pathname.startsWith(`${PREFIX}progress/`))!.url.replace(/\/(go|events)$/, '');
    for (const again of [`${progress}/go`, progress]) {
      const res = await b.request(again);
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe(labOf(hub, 'newbie'));
    }
  });

  test('a second handoff while the server runs redirects a browser known as the user straight on, without asking again', async () => {
    const b = new NoJsBrowser();
    // The server runs: the lab URL carries the stored session's fingerprint (the lab waits for it).
    expect((await b.postHandoff(svc.url, await mint(key, { subject: 'newbie' }))).url).toBe(runningLab(svc, labOf(hub, 'newbie'), 'newbie'));
    const res = await b.postToken(svc.url, await mint(key, { subject: 'newbie' }));
    expect(res.status).toBe(303);
    const location = new URL(res.headers.get('location')!);
    expect(location.pathname).toBe('/hub/login');
    const lab = new URL(runningLab(svc, labOf(hub, 'newbie'), 'newbie'));
    expect(location.searchParams.get('next')).toBe(lab.pathname + lab.search);
    const end = await b.follow(res, `${svc.url}handoff`);
    expect(end.url).toBe(runningLab(svc, labOf(hub, 'newbie'), 'newbie'));
    expect(b.confirmations).toBe(1);
  });

  test('sso mode with the servers scope alone: an existing user is started and sent straight to the lab', async () => {
    const b = new NoJsBrowser();
    const end = await b.postHandoff(sso.url, await mint(key, { subject: 'sam' }));
    expect(end.url).toBe(labOf(hub, 'sam'));
    expect(b.hops.some((h) => h.url.includes('/hub/login'))).toBe(false);
    expect((await server('sam'))?.ready).toBe(true);
  });

  test('a pending spawn is followed: the SSE stream carries the hub spawner messages, then ready', async () => {
    // Held by the test spawner until the stream has shown its message.
    expect((await hub.admin('POST', '/users/held-pending/server', {})).status).toBe(202);
    const b = new NoJsBrowser();
    const res = await b.postToken(sso.url, await mint(key, { subject: 'held-pending' }));
    expect(res.status).toBe(303);
    const progressUrl = new URL(res.headers.get('location')!, sso.url).toString();
    const events = await sseMessages(b, progressUrl, (e) => {
      if (e.message === 'Still pulling the image (test spawner)') hub.releaseSpawn('held-pending');
    });
    expect(events.at(-1)?.phase).toBe('ready');
    expect(events.map((e) => e.message)).toContain('Still pulling the image (test spawner)');
    const end = await b.follow(await b.request(progressUrl), progressUrl);
    expect(end.url).toBe(labOf(hub, 'held-pending'));
  });

  test('429 from concurrent_spawn_limit: a burst waits for Retry-After and every browser lands', async () => {
    // The spawns are held: the first holds the only slot while the others are throttled, until the hub said so.
    const users = ['held-b1', 'held-b2', 'held-b3', 'held-b4'];
    const throttled = waitFor(async () => (/pending spawns, throttling/.test(hub.log()) ? true : undefined)).then(() => {
      for (const u of users) hub.releaseSpawn(u);
    });
    const results = await Promise.all(
      users.map(async (u) => {
        const b = new NoJsBrowser();
        const end = await b.postHandoff(svc.url, await mint(key, { subject: u }));
        return { u, end, hops: b.hops };
      }),
    );
    for (const { u, end, hops } of results) {
      expect({ u, url: end.url, text: end.url === labOf(hub, u) ? '' : end.text }).toEqual({ u, url: labOf(hub, u), text: '' });
      expect(hops.every((h) => h.status < 500)).toBe(true);
    }
    await throttled;
  });

  test('a failed spawn shows the hub message and a retry button; retrying asks the hub again', async () => {
    const b = new NoJsBrowser();
    const end = await b.postHandoff(sso.url, await mint(key, { subject: 'fail-fred' }));
    // fail-fred does not exist and sso may not create users.
    expect(end.status).toBe(404);
    expect(end.text).toContain('hub_user_unknown');

    const b2 = new NoJsBrowser();
    const failed = await b2.postHandoff(svc.url, await mint(key, { subject: 'fail-fred' }));
    expect(failed.status).toBe(200);
    expect(failed.text).toContain('the test spawner refuses to start fail-fred');
    expect(failed.text).toContain('id="retry"');
    expect(failed.text).toContain('hub_spawn_failed');
    const before = (hub.log().match(/refuses to start fail-fred/g) ?? []).length;
    const retry = await b2.request(`${failed.url}/retry`, { method: 'POST' });
    expect(retry.status).toBe(303);
    const again = await b2.follow(retry, `${failed.url}/retry`);
    expect(again.text).toContain('id="retry"');
    expect((hub.log().match(/refuses to start fail-fred/g) ?? []).length).toBeGreaterThan(before);
  });

  test('progress pages belong to the browser that started them', async () => {
    const b = new NoJsBrowser();
    const failed = await b.postHandoff(svc.url, await mint(key, { subject: 'fail-gina' }));
    expect(failed.url).toContain(`${PREFIX}progress/`);
    const stranger = new NoJsBrowser();
    expect((await stranger.request(failed.url)).status).toBe(404);
    expect((await stranger.request(`${failed.url}/go`)).status).toBe(404);
  });

  test('a changed connection: keep shows the notice and keeps the server; restart restarts it', async () => {
    const started = (await server('sam'))!.started;
    const b = new NoJsBrowser();
    const kept = await b.postHandoff(sso.url, await mint(key, { subject: 'sam', omnisci: { session: randomSessionId(), port: 6274 } }));
    expect(kept.status).toBe(200);
    expect(kept.text).toContain('applies after your server restarts');
    expect((await server('sam'))!.started).toBe(started);

    const restarting = await startHubService({ hub, apiToken: hub.extraTokens['servers-only']!, hubConfig: { connectionChangePolicy: 'restart' } });
    try {
      // The store is per service instance: a first handoff records the connection, the second changes it.
      await new NoJsBrowser().postHandoff(restarting.url, await mint(key, { subject: 'sam', omnisci: { session: randomSessionId(), port: 6274 } }));
      expect((await server('sam'))!.started).toBe(started);
      const end = await new NoJsBrowser().postHandoff(restarting.url, await mint(key, { subject: 'sam', omnisci: { session: randomSessionId(), port: 6278 } }));
      expect(end.url).toBe(labOf(hub, 'sam'));
      const after = await waitFor(async () => ((await server('sam'))?.ready ? await server('sam') : undefined));
      expect(after.started).not.toBe(started);
    } finally {
      await restarting.close();
    }
  });

  test('missing scope and bad token are named; the servers-only role cannot create users', async () => {
    const creating = await startHubService({ hub, apiToken: hub.extraTokens['servers-only']!, hubConfig: { createUsers: true } });
    // Random (a guessable one is refused at start: weak_secret), but not the hub's.
    const badToken = await startHubService({ hub, apiToken: randomBytes(24).toString('hex'), hubConfig: {} });
    try {
      const r = await postToken(creating.url, await mint(key, { subject: 'nobody-yet' }), { accept: 'application/json' });
      expect(r.status).toBe(500);
      expect(((await r.json()) as { error: string }).error).toBe('hub_forbidden');
      expect(creating.logs.lines.join('\n')).toContain('requires any of [admin:users]');

      const r2 = await postToken(badToken.url, await mint(key, { subject: 'sam' }), { accept: 'application/json' });
      expect(((await r2.json()) as { error: string }).error).toBe('hub_unauthorized');
      expect((await fetch(`${badToken.internalUrl}readyz`)).status).toBe(503);
      expect((await fetch(`${sso.internalUrl}readyz`)).status).toBe(200);
    } finally {
      await creating.close();
      await badToken.close();
    }
  });

  test('hub down: hub_unavailable after bounded retries, naming the call', async () => {
    const down = await startHubService({
      hub: { ...hub, apiUrl: `http://127.0.0.1:${await freePort()}/hub/api` },
      hubConfig: { retries: 1, requestTimeoutMs: 1000 },
    });
    try {
      const r = await postToken(down.url, await mint(key, { subject: 'sam' }), { accept: 'application/json' });
      expect(r.status).toBe(502);
      expect(((await r.json()) as { error: string }).error).toBe('hub_unavailable');
      // The first calls of a handoff are the shares check's two lists, made at once: either may be named.
      expect(down.logs.lines.join('\n')).toMatch(/GET \/(shares|share-codes)\/sam: ECONNREFUSED/);
    } finally {
      await down.close();
    }
  });

  test('the login-token exchange refuses callers without the service token', async () => {
    const r = await fetch(`${svc.url}login-token/exchange`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'token wrong' },
      body: JSON.stringify({ token: 'x' }),
    });
    expect(r.status).toBe(403);
  });
});
