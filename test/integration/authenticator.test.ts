/**
 * The forced-login authenticator shipped in helm/omnisci-handoff/files/authenticator.py: its pytest
 * suite (test/authenticator) in the hub venv (scripts/deps/jupyterhub.sh). The end-to-end login
 * through a real hub is in hub.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HUB_VENV } from '../support/jupyterhub.js';

const PYTHON = join(HUB_VENV, 'bin/python');

test('pytest: test/authenticator', () => {
  if (!existsSync(PYTHON)) throw new Error('the hub venv is missing: run scripts/deps/jupyterhub.sh');
  const r = spawnSync(PYTHON, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', fileURLToPath(new URL('../authenticator', import.meta.url))], {
    encoding: 'utf8',
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
  });
  expect(`${r.stdout}${r.stderr}`).toMatch(/\d+ passed/);
  expect(r.status).toBe(0);
}, 120_000);
