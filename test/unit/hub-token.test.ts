import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HandoffError } from '../../src/errors.js';
import { createHubLanding } from '../../src/web/landing/hub.js';
import { tempDir, testConfig } from '../support/core.js';

test('a hub API token with characters a token cannot have is refused up front, without quoting it', () => {
  const file = join(tempDir('oh-hubtoken-'), 'token');
  writeFileSync(file, 'abc123secret\nsecond-line\n');
  const config = testConfig({ hub: { enabled: true, apiUrl: 'http://127.0.0.1:1/hub/api', apiTokenFile: file } });
  let err: unknown;
  try {
    createHubLanding(config, { store: { spend: async () => undefined } });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(HandoffError);
  expect((err as HandoffError).code).toBe('hub_unauthorized');
  expect(`${(err as HandoffError).message} ${(err as HandoffError).detail}`).not.toContain('abc123secret');
});

test('a guessable hub API token is refused at start (weak_secret: at least 128 bits), without quoting it', () => {
  const file = join(tempDir('oh-hubtoken-'), 'token');
  writeFileSync(file, 'jupyterhub-token-2024\n');
  const config = testConfig({ hub: { enabled: true, apiUrl: 'http://127.0.0.1:1/hub/api', apiTokenFile: file } });
  let err: unknown;
  try {
    createHubLanding(config, { store: { spend: async () => undefined } });
  } catch (e) {
    err = e;
  }
  expect((err as HandoffError).code).toBe('weak_secret');
  expect((err as HandoffError).message).toMatch(/^The hub API token has about \d+ bits of entropy; at least 128 are needed/);
  expect(`${(err as HandoffError).message} ${(err as HandoffError).detail}`).not.toContain('jupyterhub-token-2024');
});
