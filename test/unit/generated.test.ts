import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { CHART_MANAGED_CONFIG, valuesSchema, valuesYaml } from '../../src/deploy/chart-values.js';
import { configSchema } from '../../src/config/schema.js';
import { errorReference } from '../../src/deploy/error-reference.js';
import { claimsSchemaJson } from '../../src/handoff/claims.js';
import { configReference } from '../../src/deploy/config-reference.js';

// Generated files and their one source (npm run generate writes them; these tests fail on drift).
const CHART = join(process.cwd(), 'helm/omnisci-handoff');

test('schemas/handoff-claims.schema.json is generated from src/handoff/claims.ts (run npm run generate)', () => {
  expect(readFileSync(join(process.cwd(), 'schemas/handoff-claims.schema.json'), 'utf8')).toBe(claimsSchemaJson());
});

test('values.schema.json and values.yaml are generated from the config schema (run npm run generate)', () => {
  expect(readFileSync(join(CHART, 'values.schema.json'), 'utf8')).toBe(`${JSON.stringify(valuesSchema(), null, 2)}\n`);
  expect(readFileSync(join(CHART, 'values.yaml'), 'utf8')).toBe(valuesYaml());
});

test('docs/errors.md is generated from src/errors.ts (run npm run generate)', () => {
  expect(readFileSync(join(process.cwd(), 'docs/errors.md'), 'utf8')).toBe(errorReference());
});

test('docs/config.md is generated from the config and values schemas (run npm run generate)', () => {
  expect(readFileSync(join(process.cwd(), 'docs/config.md'), 'utf8')).toBe(configReference(configSchema, valuesSchema()));
});

/** Dotted paths of every leaf setting of a schema. */
function leaves(node: any, prefix = ''): string[] {
  if (node.type === 'object' && node.properties)
    return Object.entries(node.properties).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
  return [prefix];
}

test('every config setting except the chart-managed ones is a value, described', () => {
  const config = (valuesSchema().properties as any).config;
  const managed = (p: string) => CHART_MANAGED_CONFIG.some((m) => p === m || p.startsWith(`${m}.`));
  expect(leaves(config).sort()).toEqual(leaves(configSchema).filter((p) => !managed(p)).sort());
  for (const p of leaves(valuesSchema())) {
    let node: any = valuesSchema();
    for (const k of p.split('.')) node = node.properties[k];
    expect({ p, description: typeof node.description }).toEqual({ p, description: 'string' });
  }
});

test('docs/config.md has a heading for every setting and every chart value', () => {
  const reference = configReference(configSchema, valuesSchema());
  const { config: _c, global: _g, ...chart } = valuesSchema().properties as any;
  for (const p of [...leaves(configSchema), ...leaves({ type: 'object', properties: chart })]) expect(reference).toContain(`# \`${p}\`\n`);
  expect(reference).toContain('#### `hub.enabled`\n\nUse the hub REST API');
  expect(reference).toMatch(/#### `listen.basePath`\n\n[^#]*Set by the chart/);
  expect(reference).toMatch(/#### `webhook.enabled`\n[^#]*- Default: `false`\n- Chart default: `true`/);
  expect(reference).toMatch(/#### `token.issuer`\n[^#]*- Default: unset\n- Chart default: `"omnisci-immerse"`/);
});

test('values.yaml holds every default, and its values pass the values schema', () => {
  const values = parseYaml(valuesYaml());
  const validate = new Ajv({ strict: false }).compile(valuesSchema());
  expect(validate(values)).toBe(true);
  expect(values.config.listen.trustProxy).toBe(true);
  expect(values.config.listen.host).toBeUndefined();
  expect(values.replicaCount).toBe(2);
  expect(validate({ ...values, replicas: 2 })).toBe(false);
  expect(validate({ ...values, config: { ...values.config, store: { backend: 'local' } } })).toBe(false);
});
