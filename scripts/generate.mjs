// Writes every generated file from its one source (run through `npm run generate`, which builds
// first; unit tests fail when a committed file drifts):
// - schemas/handoff-claims.schema.json from src/handoff/claims.ts (the token contract issuers read);
// - the chart's values.yaml and values.schema.json from src/deploy/chart-values.ts;
// - docs/config.md, the configuration reference, from the config and values schemas;
// - manifests/omnisci-handoff.yaml, the chart rendered for `kubectl apply -k manifests/`;
// - docs/errors.md from src/errors.ts (the error codes).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { claimsSchemaJson } = await import(join(root, 'dist/src/handoff/claims.js'));
const { valuesSchema, valuesYaml } = await import(join(root, 'dist/src/deploy/chart-values.js'));
const { configSchema } = await import(join(root, 'dist/src/config/schema.js'));
const { configReference } = await import(join(root, 'dist/src/deploy/config-reference.js'));
const { renderManifests } = await import(join(root, 'dist/src/deploy/manifests.js'));
const { errorReference } = await import(join(root, 'dist/src/deploy/error-reference.js'));
const chart = join(root, 'helm/omnisci-handoff');

writeFileSync(join(root, 'schemas/handoff-claims.schema.json'), claimsSchemaJson());
writeFileSync(join(chart, 'values.schema.json'), `${JSON.stringify(valuesSchema(), null, 2)}\n`);
writeFileSync(join(chart, 'values.yaml'), valuesYaml());
writeFileSync(join(root, 'docs/errors.md'), errorReference());
writeFileSync(join(root, 'docs/config.md'), configReference(configSchema, valuesSchema()));
execFileSync('bash', [join(root, 'scripts/deps/helm.sh')], { stdio: 'inherit' });
writeFileSync(join(root, 'manifests/omnisci-handoff.yaml'), renderManifests(join(root, '.cache/helm/v4/helm'), root));
