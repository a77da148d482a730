/**
 * The layering of src/ (README, "Source layout"; the rules: .dependency-cruiser.mjs) holds: no
 * import points the wrong way, no cycle, express only in web/, web/ only from the composition root.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cruise } from 'dependency-cruiser';
import config, { TIERS } from '../../.dependency-cruiser.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function violations(baseDir: string): Promise<string[]> {
  const { output } = await cruise(['src'], { ...config.options, baseDir, ruleSet: { forbidden: config.forbidden }, validate: true });
  if (typeof output === 'string') throw new Error('dependency-cruiser gave no structured output');
  return output.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`);
}

test('src/ imports point one way', async () => {
  expect(await violations(root)).toEqual([]);
}, 60_000);

test('a wrong-way import is caught (a store module importing web/, which imports express)', async () => {
  const found = await violations(fileURLToPath(new URL('../fixtures/wrong-way', import.meta.url)));
  expect(found).toEqual(
    expect.arrayContaining([
      'tier:src/store: src/store/record.ts → src/web/pages.ts',
      'web-only-from-service: src/store/record.ts → src/web/pages.ts',
    ]),
  );
}, 60_000);

test("every folder and top-level module of src/ is in a tier, and in the README's source layout", () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const layout = readme.slice(readme.indexOf('## Source layout'));
  const patterns = TIERS.flatMap((t) => t.paths).map((p) => new RegExp(p));
  for (const entry of readdirSync(new URL('../../src', import.meta.url), { withFileTypes: true })) {
    const path = entry.isDirectory() ? `src/${entry.name}/` : `src/${entry.name}`;
    expect({ path, tiered: patterns.some((p) => p.test(path)) }).toEqual({ path, tiered: true });
    expect({ path, documented: layout.includes(entry.isDirectory() ? `\`${entry.name}/\`` : `\`${entry.name}\``) }).toEqual({ path, documented: true });
  }
});
