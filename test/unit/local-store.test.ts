/** The local backend's own behaviour: layout, modes, hostile names, failures. The shared rules run in test/support/store-contract.ts. */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HandoffError } from '../../src/errors.js';
import { createLocalStore, STATE_FILE, userDir } from '../../src/store/local.js';
import { makeHandoff, randomSessionId, tempDir, testConfig } from '../support/core.js';

const handoff = makeHandoff;

function setup(overrides: Record<string, unknown> = {}) {
  const dir = tempDir('oh-store-');
  const config = testConfig({ store: { local: { dir } }, notebook: overrides });
  return { dir, config, store: createLocalStore(config) };
}

const mode = (p: string) => statSync(p).mode & 0o777;

test('layout: users/<slug>/ with the session file and state.json, 0700 dirs and 0600 files, no temp files left', async () => {
  const { dir, config, store } = setup();
  const h = handoff('user@email.com');
  expect((await store.accept(h)).outcome).toBe('stored');
  const udir = join(dir, 'users', 'user-email-com---0925f997');
  expect(userDir(dir, 'user@email.com')).toBe(udir);
  expect(readdirSync(udir).sort()).toEqual([config.notebook.sessionFileName, STATE_FILE].sort());
  expect(mode(dir)).toBe(0o700);
  expect(mode(join(dir, 'users'))).toBe(0o700);
  expect(mode(udir)).toBe(0o700);
  expect(mode(join(udir, STATE_FILE))).toBe(0o600);
  expect(mode(join(udir, 'session'))).toBe(0o600);
  expect(JSON.parse(readFileSync(join(udir, 'session'), 'utf8'))).toEqual({ session: h.session, query: 'SELECT 1' });
  const state = JSON.parse(readFileSync(join(udir, STATE_FILE), 'utf8'));
  expect(state).toMatchObject({ user: 'user@email.com', session: h.session, iat: h.iat, connection: h.connection });
  expect(await store.get('user@email.com')).toEqual(state);
});

test('userAccess group: traversable top directories, session file 0640 whatever the umask, the rest private', async () => {
  const dir = tempDir('oh-store-');
  const store = createLocalStore(testConfig({ store: { local: { dir, userAccess: 'group' } } }));
  const umask = process.umask(0o077);
  try {
    await store.accept(handoff('nina'));
    await store.accept(handoff('nina'));
  } finally {
    process.umask(umask);
  }
  const udir = join(dir, 'users', 'nina');
  expect([mode(dir), mode(join(dir, 'users'))]).toEqual([0o711, 0o711]);
  // The hub's hook gives the directory the user's group and opens it (2750); until then nobody gets in.
  expect(mode(udir)).toBe(0o700);
  expect(mode(join(udir, 'session'))).toBe(0o640);
  expect(mode(join(udir, STATE_FILE))).toBe(0o600);
  expect(readdirSync(udir).sort()).toEqual(['session', STATE_FILE].sort());
  await store.check();
  expect(mode(dir)).toBe(0o711);
});

test('text format writes the id alone', async () => {
  const { dir, store } = setup({ sessionFormat: 'text', sessionFileName: 'omnisci.session' });
  const h = handoff('bob');
  await store.accept(h);
  expect(readFileSync(join(dir, 'users', 'bob', 'omnisci.session'), 'utf8')).toBe(`${h.session}\n`);
});

test('hostile user names stay inside the store directory', async () => {
  const { dir, store } = setup();
  const names = ['../../etc/passwd', '..', '.', 'a/b', 'x\r\nSet-Cookie: y', 'Ωμέγα', '😀', 'x'.repeat(4096), '', 'UPPER'];
  for (const name of names) await store.accept(handoff(name));
  const entries = readdirSync(join(dir, 'users'));
  expect(entries).toHaveLength(names.length);
  for (const e of entries) expect(e).toMatch(/^[a-z][a-z0-9-]{0,62}$/);
  for (const name of names) expect((await store.get(name))?.user).toBe(name);
  expect(readdirSync(dir).sort()).toEqual(['users']);
});

test('a store directory that cannot be used is store_unavailable, and check() says so', async () => {
  const parent = tempDir('oh-store-');
  const { writeFileSync } = await import('node:fs');
  const blocked = join(parent, 'not-a-dir');
  writeFileSync(blocked, '');
  const store = createLocalStore(testConfig({ store: { local: { dir: blocked } } }));
  await expect(store.check()).rejects.toMatchObject({ code: 'store_unavailable' });
  await expect(store.accept(handoff('hank'))).rejects.toMatchObject({ code: 'store_unavailable' });
  await expect(setup().store.check()).resolves.toBeUndefined();
});

test('a corrupt state.json is store_unavailable, and nothing of its content reaches the error', async () => {
  const { dir, store } = setup();
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const secret = randomSessionId();
  mkdirSync(join(dir, 'users', 'ivan'), { recursive: true });
  writeFileSync(join(dir, 'users', 'ivan', STATE_FILE), `{"session":${secret}`);
  const err = (await store.accept(handoff('ivan')).catch((e: unknown) => e)) as HandoffError;
  expect(err.code).toBe('store_unavailable');
  expect(`${err.message} ${err.detail} ${String(err.cause)}`).not.toContain(secret.slice(0, 8));
});

test('a user directory (or the whole store) removed behind the service is made again on the next handoff', async () => {
  const { dir, store } = setup();
  await store.accept(handoff('ivan'));
  rmSync(userDir(dir, 'ivan'), { recursive: true });
  const second = handoff('ivan');
  expect((await store.accept(second)).outcome).toBe('stored');
  expect(JSON.parse(readFileSync(join(userDir(dir, 'ivan'), 'session'), 'utf8')).session).toBe(second.session);
  rmSync(dir, { recursive: true });
  const third = handoff('ivan');
  expect((await store.accept(third)).outcome).toBe('stored');
  expect(JSON.parse(readFileSync(join(userDir(dir, 'ivan'), STATE_FILE), 'utf8')).session).toBe(third.session);
  expect(mode(dir)).toBe(0o700);
});
