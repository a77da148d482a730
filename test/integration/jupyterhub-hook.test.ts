/**
 * contrib/jupyterhub/omnisci_handoff_hook.py against the TypeScript side: its pytest suite (in the
 * hub venv with KubeSpawner: scripts/deps/jupyterhub.sh), and the same per-user
 * directory, env vars and Jupyter config files as the service computes, for a record the real local
 * store wrote.
 */
import { describe, expect, jest, test } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { jupyterConfigFiles, notebookEnv } from '../../src/notebook/outputs.js';
import { createLocalStore, userDir } from '../../src/store/local.js';
import { safeSlug } from '../../src/k8s/slug.js';
import { randomSessionId, tempDir, testConfig } from '../support/core.js';
import { HUB_VENV } from '../support/jupyterhub.js';
import { ROOT } from '../support/root.js';

jest.setTimeout(120_000);
const PYTHON = join(HUB_VENV, 'bin/python');
const HOOK_DIR = join(ROOT, 'contrib/jupyterhub');
if (!existsSync(PYTHON)) throw new Error('the hub venv is missing: run scripts/deps/jupyterhub.sh');
// Leave no __pycache__ in the work tree.
const env = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };

/** Runs Python with the hook importable; `block` hides KubeSpawner so the hook's own port is used. */
function python(code: string, input: unknown, block = false): unknown {
  const prelude = `import sys, json\n${block ? "sys.modules['kubespawner'] = None\nsys.modules['kubespawner.slugs'] = None\n" : ''}sys.path.insert(0, ${JSON.stringify(HOOK_DIR)})\nimport omnisci_handoff_hook as h\nargs = json.load(sys.stdin)\n`;
  return JSON.parse(execFileSync(PYTHON, ['-c', prelude + code], { input: JSON.stringify(input), encoding: 'utf8', env }));
}

test('pytest: contrib/jupyterhub/tests', () => {
  const r = spawnSync(PYTHON, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', join(HOOK_DIR, 'tests')], { encoding: 'utf8', env });
  expect(`${r.stdout}${r.stderr}`).toMatch(/\d+ passed/);
  expect(r.status).toBe(0);
});

describe.each([false, true])('hook vs service (KubeSpawner hidden: %s)', (block) => {
  test('same slugs as the TypeScript port, for awkward names too', () => {
    const names = ['alice', 'Alice', 'a--b', 'user@example.com', '', '0day', 'ünï', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', 'x'.repeat(70), '-', 'a_b.c', 'İ', 'ǅ', 'Straße'];
    expect(python('print(json.dumps([h.safe_slug(n) for n in args]))', names, block)).toEqual(names.map((n) => safeSlug(n)));
  });

  // The second: header mode's notebook settings (both stock env families, allow_hidden) and a re-link URL.
  test.each([{}, { envFamilies: ['OMNISCI', 'HEAVYAI'], allowHidden: true, relinkUrl: 'https://immerse.example.com/?open=notebook&from=jupyter' }])('reads what the real local store wrote: same directory, env vars and Jupyter config files (%j)', async (extra) => {
    const dir = tempDir('oh-hook-');
    const config = testConfig({
      store: { local: { dir } },
      notebook: { sessionFileName: 'omnisci-session', env: { protocol: 'OMNISCI_PROTOCOL', host: 'DB_HOST', port: 'OMNISCI_PORT' }, ...extra },
    });
    const store = createLocalStore(config);
    const user = 'Nina.Example@corp';
    const now = Math.floor(Date.now() / 1000);
    const connection = { protocol: 'binary', host: 'heavy.db.test', port: 6278, database: 'omnisci' } as const;
    await store.accept({ user, jti: 'j1', iat: now, exp: now + 60, session: randomSessionId(), query: '', connection });
    await store.close();
    const sessionFile = join(userDir(dir, user), 'omnisci-session');
    const got = python(
      `hook = h.OmnisciHandoffHook(args['dir'], session_file_name='omnisci-session', env_names=args['env'], env_families=args['families'], allow_hidden=args['hidden'], relink_url=args['relink'])
print(json.dumps({'file': hook.session_file(args['user']), 'env': hook.connection_env(args['user']), 'files': hook.jupyter_config_files(args['user'])}))`,
      { dir, user, env: config.notebook.env, families: config.notebook.envFamilies, hidden: config.notebook.allowHidden, relink: config.notebook.relinkUrl ?? null },
      block,
    );
    expect(got).toEqual({
      file: sessionFile,
      env: notebookEnv(connection, config.notebook),
      files: jupyterConfigFiles(config.notebook, sessionFile),
    });
  });
});
