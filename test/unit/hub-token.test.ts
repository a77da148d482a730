import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HandoffError } from '../../src/errors.js';
import { loadApiToken } from '../../src/hub/service-token.js';
import { createHubLanding } from '../../src/web/landing/hub.js';
import { tempDir, testConfig } from '../support/core.js';

/** The error the hub landing (the service's start) throws with the API token file `file`. */
function startError(file: string): HandoffError {
  const config = testConfig({ hub: { enabled: true, apiUrl: 'http://127.0.0.1:1/hub/api', apiTokenFile: file } });
  try {
    createHubLanding(config, { store: { spend: async () => undefined } });
  } catch (e) {
    expect(e).toBeInstanceOf(HandoffError);
    return e as HandoffError;
  }
  throw new Error('the hub landing started');
}

const tokenFile = (text: string) => {
  const file = join(tempDir('oh-hubtoken-'), 'token');
  writeFileSync(file, text);
  return file;
};

test('a hub API token with characters a token cannot have is refused up front, without quoting it', () => {
  const err = startError(tokenFile('abc123secret\nsecond-line\n'));
  expect(err.code).toBe('hub_unauthorized');
  expect(`${err.message} ${err.detail}`).not.toContain('abc123secret');
});

test('a guessable hub API token is refused at start (weak_secret: at least 128 bits), without quoting it', () => {
  const err = startError(tokenFile('jupyterhub-token-2024\n'));
  expect(err.code).toBe('weak_secret');
  expect(err.message).toMatch(/^The hub API token has about \d+ bits of entropy; at least 128 are needed/);
  expect(`${err.message} ${err.detail}`).not.toContain('jupyterhub-token-2024');
});

test('the token is read one way for the service and doctor: a missing or empty file, or no token at all, is named', () => {
  const missing = join(tempDir('oh-hubtoken-'), 'none');
  expect(startError(missing)).toMatchObject({ code: 'hub_unauthorized', detail: `cannot read hub.apiTokenFile ${missing} (ENOENT)` });
  const empty = tokenFile('\n');
  const hub = { ...testConfig().hub, apiTokenFile: empty };
  expect(() => loadApiToken(hub, {})).toThrow(expect.objectContaining({ code: 'hub_unauthorized', detail: `hub.apiTokenFile ${empty} is empty` }));
  const noFile = testConfig().hub;
  expect(() => loadApiToken(noFile, {})).toThrow(expect.objectContaining({ detail: 'no API token: JUPYTERHUB_API_TOKEN is not set and hub.apiTokenFile is not configured' }));
  // The file wins over the environment; the environment alone serves; a weak token is loaded (doctor reports its strength).
  expect(loadApiToken({ ...hub, apiTokenFile: tokenFile(' from-file \n') }, { JUPYTERHUB_API_TOKEN: 'from-env' })).toBe('from-file');
  expect(loadApiToken(noFile, { JUPYTERHUB_API_TOKEN: 'from-env' })).toBe('from-env');
});
