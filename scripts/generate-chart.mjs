// Writes the generated chart files: values.yaml and values.schema.json (from src/chart/values.ts) and
// manifests/omnisci-handoff.yaml (the chart rendered for `kubectl apply -k manifests/`).
// Run through `npm run chart:generate` (builds first). Tests fail when these files drift.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { valuesSchema, valuesYaml } = await import(join(root, 'dist/src/chart/values.js'));
const { renderManifests } = await import(join(root, 'dist/src/chart/manifests.js'));
const chart = join(root, 'helm/omnisci-handoff');

writeFileSync(join(chart, 'values.schema.json'), `${JSON.stringify(valuesSchema(), null, 2)}\n`);
writeFileSync(join(chart, 'values.yaml'), valuesYaml());
execFileSync('bash', [join(root, 'scripts/deps/helm.sh')], { stdio: 'inherit' });
writeFileSync(join(root, 'manifests/omnisci-handoff.yaml'), renderManifests(join(root, '.cache/helm/v4/helm'), root));
