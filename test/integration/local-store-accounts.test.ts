/**
 * store.local.userAccess: group with real unix accounts, as on a hub whose servers run under their
 * users' own accounts (LocalProcessSpawner with system users, SystemdSpawner, TLJH): the service runs
 * `serve` as its own account, contrib/jupyterhub/omnisci_handoff_hook.py runs as root like a hub's
 * pre_spawn_hook with a real LocalProcessSpawner, and each user's account reads what its server would.
 * Creating the accounts needs root (CI runs as root, and fails without it); elsewhere the suite is skipped.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { HMAC_SECRET, hmacKey, mint, postToken, randomSessionId, rawTestConfig, tempDir } from '../support/core.js';
import { HUB_VENV } from '../support/jupyterhub.js';
import { serveCli, type Served } from '../support/process.js';
import { notRoot, requirePrerequisite } from '../support/prerequisites.js';
import { ROOT } from '../support/root.js';

jest.setTimeout(60_000);
const suite = requirePrerequisite(notRoot('creating unix accounts'), 'run as root, as CI does');
const tag = randomBytes(3).toString('hex');
const SVC = `oh-${tag}-svc`;
const NINA = `oh-${tag}-nina`;
const OMAR = `oh-${tag}-omar`;
const key = hmacKey('HS256');
const sessions: string[] = [];
let store: string;
let configDir: string;
let served: Served | undefined;

function id(flag: '-u' | '-g', account: string): number {
  return Number(execFileSync('id', [flag, '--', account], { encoding: 'utf8' }).trim());
}

/** Runs a command as `account`; exit status and output. */
function as(account: string, cmd: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync('runuser', ['-u', account, '--', ...cmd], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/** The hook as a root hub's pre_spawn_hook runs it, for a LocalProcessSpawner (unix account = hub name). */
function preSpawn(user: string): Record<string, string> {
  const code = `import sys, json
from types import SimpleNamespace
from jupyterhub.spawner import LocalProcessSpawner
sys.path.insert(0, ${JSON.stringify(join(ROOT, 'contrib/jupyterhub'))})
from omnisci_handoff_hook import OmnisciHandoffHook
s = LocalProcessSpawner(user=SimpleNamespace(name=sys.argv[1], url='/user/x/'))
OmnisciHandoffHook(sys.argv[2], user_access='group')(s)
print(json.dumps(s.environment))`;
  const out = execFileSync(join(HUB_VENV, 'bin/python'), ['-c', code, user, store], { encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  return JSON.parse(out) as Record<string, string>;
}

async function handoff(user: string): Promise<string> {
  const session = randomSessionId();
  sessions.push(session);
  const res = await postToken(served!.url, await mint(key, { subject: user, omnisci: { session } }));
  expect(res.status).toBe(303);
  return session;
}

const sessionFile = (user: string) => join(store, 'users', user, 'session');
const denied = (r: { status: number | null; err: string }) => r.status !== 0 && /Permission denied/.test(r.err);

suite(`userAccess: group with real unix accounts`, () => {
  beforeAll(async () => {
    for (const a of [SVC, NINA, OMAR]) execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', a]);
    store = tempDir('oh-accounts-');
    chownSync(store, id('-u', SVC), id('-g', SVC));
    configDir = tempDir('oh-accounts-cfg-');
    chmodSync(configDir, 0o755);
    const configFile = join(configDir, 'config.yaml');
    writeFileSync(
      configFile,
      stringify(rawTestConfig({ store: { local: { dir: store, userAccess: 'group' } } })),
      { mode: 0o644 },
    );
    // The service under its own account, as on a real hub: not root, member of no user's group.
    served = await serveCli(['--config', configFile], { TEST_HMAC: HMAC_SECRET }, '/', { uid: id('-u', SVC), gid: id('-g', SVC) });
  });

  afterAll(async () => {
    await served?.stop();
    for (const s of sessions) expect(served?.output() ?? '').not.toContain(s);
    if (store) rmSync(store, { recursive: true, force: true });
    if (configDir) rmSync(configDir, { recursive: true, force: true });
    if (store) rmSync(`${store}-jupyter`, { recursive: true, force: true });
    for (const a of [SVC, NINA, OMAR]) spawnSync('userdel', [a]);
  });

  test('handoff, then spawn: the user reads their own session file, nobody else does', async () => {
    const first = await handoff(NINA);
    const env = preSpawn(NINA);

    expect(as(NINA, ['cat', sessionFile(NINA)])).toMatchObject({ status: 0, out: expect.stringContaining(first) });
    expect(denied(as(OMAR, ['cat', sessionFile(NINA)]))).toBe(true);
    // The record stays the service's; the store's directories can be crossed, not listed.
    expect(denied(as(NINA, ['cat', join(store, 'users', NINA, 'state.json')]))).toBe(true);
    for (const dir of [store, join(store, 'users'), `${store}-jupyter`]) {
      expect(denied(as(OMAR, ['ls', dir]))).toBe(true);
      expect(denied(as(NINA, ['ls', dir]))).toBe(true);
    }

    // The server's Jupyter config (a directory jupyter lists) is the user's to read too.
    const config = env.JUPYTER_CONFIG_PATH!;
    expect(as(NINA, ['ls', join(config, 'jupyter_notebook_config.d')])).toMatchObject({ status: 0, out: 'omnisci-handoff.json\n' });
    const manager = as(NINA, ['cat', join(config, 'jupyter_notebook_config.json')]);
    expect(JSON.parse(manager.out).OmniSciSessionManager.session_file).toBe(sessionFile(NINA));
    expect(denied(as(OMAR, ['cat', join(config, 'jupyter_notebook_config.json')]))).toBe(true);

    // A later handoff replaces the file (temporary file + rename): the new one has the user's group too.
    const second = await handoff(NINA);
    expect(as(NINA, ['cat', sessionFile(NINA)])).toMatchObject({ status: 0, out: expect.stringContaining(second) });
    expect(denied(as(OMAR, ['cat', sessionFile(NINA)]))).toBe(true);
  });

  test('spawn before the first handoff: the handoff that follows is readable by the running server', async () => {
    preSpawn(OMAR);
    expect(as(OMAR, ['cat', sessionFile(OMAR)]).err).toMatch(/No such file/);
    const session = await handoff(OMAR);
    expect(as(OMAR, ['cat', sessionFile(OMAR)])).toMatchObject({ status: 0, out: expect.stringContaining(session) });
    expect(denied(as(NINA, ['cat', sessionFile(OMAR)]))).toBe(true);
  });
});
