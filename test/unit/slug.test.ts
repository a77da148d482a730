import { readFileSync } from 'node:fs';
import { labelSlug, safeSlug } from '../../src/k8s/slug.js';

// Shared with the Python hook's tests (contrib/jupyterhub/tests), so both ports meet the same vectors.
const vectors = JSON.parse(readFileSync(new URL('../fixtures/safe-slug.json', import.meta.url), 'utf8')) as {
  default: [string, string][];
  maxLength: [number, string, string][];
  refused: [number, string][];
  hostile: string[];
  label: [string, string][];
};

test.each(vectors.label)('labelSlug(%j) = %j (KubeSpawner pod label)', (name, expected) => {
  expect(labelSlug(name)).toBe(expected);
});

test.each(vectors.default)('safeSlug(%j) = %j', (name, expected) => {
  expect(safeSlug(name)).toBe(expected);
});

test.each(vectors.maxLength)('max_length %i: safeSlug(%j) = %j', (maxLength, name, expected) => {
  expect(safeSlug(name, maxLength)).toBe(expected);
});

test.each(vectors.refused)('max_length %i is refused like kubespawner', (maxLength, name) => {
  expect(() => safeSlug(name, maxLength)).toThrow(RangeError);
});

test('slugs are DNS labels for hostile names', () => {
  for (const name of vectors.hostile) {
    expect(safeSlug(name)).toMatch(/^[a-z][a-z0-9-]{0,61}[a-z0-9]$/);
  }
});
