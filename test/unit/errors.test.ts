import { readdirSync, readFileSync } from 'node:fs';
import { ERRORS, HandoffError, toHandoffError } from '../../src/errors.js';

const docs = readdirSync(new URL('../../docs/', import.meta.url))
  .filter((f) => f.endsWith('.md'))
  .map((f) => readFileSync(new URL(`../../docs/${f}`, import.meta.url), 'utf8'))
  .join('\n');

test.each(Object.keys(ERRORS))('%s is an HTTP error with a sentence, documented for operators', (code) => {
  const e = new HandoffError(code as keyof typeof ERRORS);
  expect(e.status).toBeGreaterThanOrEqual(400);
  expect(e.status).toBeLessThan(600);
  expect(e.message).toMatch(/^[A-Z].*[.)]$/);
  expect(docs).toContain(`\`${code}\``);
});

test('unknown failures become `internal`, keeping their text for the logs only', () => {
  const e = toHandoffError(new Error('disk on fire'));
  expect(e.code).toBe('internal');
  expect(e.status).toBe(500);
  expect(e.message).not.toContain('disk');
  expect(e.detail).toBe('disk on fire');
});
