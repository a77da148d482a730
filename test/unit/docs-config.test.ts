/**
 * Every YAML block of the docs is checked as what it is, so a documented example cannot drift into
 * one the service refuses. A block is a service config file unless its first line says otherwise:
 *
 * - `# chart values …`: values of the omnisci-handoff chart, validated against its values.schema.json;
 * - `# z2jh values …`: a part of what `omnisci-handoff z2jh-values` prints, compared with it;
 * - `# … (not a config)`: shown for reading (e.g. an abridged Kubernetes object); counted, not checked.
 *
 * A service config must pass `check-config` (the loader it runs) in the environment the service
 * runs in: a hub service gets JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN and JUPYTERHUB_SERVICE_PREFIX
 * from the hub (docs/heavyai.md says so next to its example).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { loadConfigFile, resolveConfig } from '../../src/config/load.js';
import { z2jhValues } from '../../src/deploy/z2jh.js';
import { codeBlocks, DOC_FILES } from '../support/docs.js';
import { ROOT } from '../support/root.js';

const HUB_SERVICE_ENV = {
  JUPYTERHUB_API_URL: 'http://127.0.0.1:8081/hub/api',
  JUPYTERHUB_API_TOKEN: 'the-hub-gives-its-service-a-token',
  JUPYTERHUB_SERVICE_PREFIX: '/services/omnisci-handoff/',
};

const blocks = DOC_FILES.flatMap(codeBlocks).filter((b) => b.lang === 'yaml' || b.lang === 'yml');
const kindOf = (text: string) => {
  const first = text.split('\n', 1)[0]!;
  if (first.startsWith('# chart values')) return 'chart';
  if (first.startsWith('# z2jh values')) return 'z2jh';
  if (/^# .*\(not a config\)$/.test(first)) return 'shown';
  return 'config';
};
const cases = blocks.map((b) => [`${b.file}:${b.line}`, kindOf(b.text), b.text] as const);

const dir = mkdtempSync(join(tmpdir(), 'oh-docs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('the docs show service configs, and every other block says what it is', () => {
  // The examples this test exists for: README's, header mode's and the hubs without Kubernetes.
  const configs = cases.filter(([, kind]) => kind === 'config').map(([where]) => where.split(':')[0]);
  expect(configs).toEqual(expect.arrayContaining(['README.md', 'docs/heavyai.md', 'docs/non-kubernetes.md']));
  expect(cases.filter(([, kind]) => kind === 'chart').length).toBeGreaterThan(0);
});

test.each(cases.filter(([, kind]) => kind === 'config'))('%s: check-config passes', (where, _kind, text) => {
  const file = join(dir, `${where.replace(/[/:]/g, '_')}.yaml`);
  writeFileSync(file, text);
  expect(() => loadConfigFile(file, HUB_SERVICE_ENV)).not.toThrow();
});

test.each(cases.filter(([, kind]) => kind === 'chart'))('%s: valid values of the chart', (_where, _kind, text) => {
  const schema = JSON.parse(readFileSync(join(ROOT, 'helm/omnisci-handoff/values.schema.json'), 'utf8')) as object;
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  const values = parse(text) as Record<string, unknown>;
  expect(validate(values) ? [] : validate.errors).toEqual([]);
  expect(Object.keys(values)).toContain('config');
});

test.each(cases.filter(([, kind]) => kind === 'z2jh'))('%s: part of what z2jh-values prints', (_where, _kind, text) => {
  const config = resolveConfig({ hub: { enabled: true }, heavydb: { enabled: true, url: 'http://heavydb:6278/' }, omnisci: { host: 'heavydb' } }, HUB_SERVICE_ENV);
  expect(z2jhValues(config, { authenticatorSource: '# the authenticator' })).toMatchObject(parse(text) as object);
});
