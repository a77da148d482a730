import { safeSlug } from '../../src/store/slug.js';

// Vectors from jupyterhub/kubespawner tests/test_slugs.py (KubeSpawner 7).
const vectors: [string, string][] = [
  ['jupyter-alex', 'jupyter-alex'],
  ['jupyter-Alex', 'jupyter-alex---3a1c285c'],
  ['jupyter-üni', 'jupyter-ni---a5aaf5dd'],
  ['endswith-', 'endswith---165f1166'],
  ['-start', 'start---f587e2dc'],
  ['username--servername', 'username-servername---d957f1de'],
  ['start---f587e2dc', 'start-f587e2dc---cc5bb9c9'],
  ['x'.repeat(63), 'x'.repeat(63)],
  ['x'.repeat(64), 'xxxxxxxxxxxxxxxxxxxxx---7ce10097'],
  ['x'.repeat(65), 'xxxxxxxxxxxxxxxxxxxxx---9537c5fd'],
  ['', 'x---e3b0c442'],
  ['user@email.com', 'user-email-com---0925f997'],
];

test.each(vectors)('safeSlug(%j) = %j', (name, expected) => {
  expect(safeSlug(name)).toBe(expected);
});

test.each([
  [16, 16, 'x'.repeat(16)],
  [16, 17, 'xxxxx---d04fd59f'],
  [12, 16, 'x---9c572959'],
])('max_length %i, length %i', (maxLength, length, expected) => {
  expect(safeSlug('x'.repeat(length), maxLength)).toBe(expected);
});

test('max_length 11 is refused like kubespawner', () => {
  expect(() => safeSlug('x'.repeat(16), 11)).toThrow(RangeError);
});

test('slugs are DNS labels for hostile names', () => {
  for (const name of ['../..', 'a/b', 'x\r\ny', '1abc', 'Ω'.repeat(2048), '.', 'ünï@cødé']) {
    expect(safeSlug(name)).toMatch(/^[a-z][a-z0-9-]{0,61}[a-z0-9]$/);
  }
});
