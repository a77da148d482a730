// No Docker engine here: the image's contract is checked on the Dockerfile itself.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = process.cwd();
const lines = readFileSync(join(root, 'Dockerfile'), 'utf8')
  .split('\n')
  .filter((l) => l.trim() && !l.trim().startsWith('#'));
const stages = lines.join('\n').split(/^FROM /m).slice(1);
const final = stages.at(-1)!;

test('multi-stage build on Node 24 slim', () => {
  expect(stages.length).toBeGreaterThanOrEqual(2);
  for (const s of stages) expect(s).toMatch(/^node:24-slim\b/);
});

test('the final image installs production dependencies only and copies the build output', () => {
  expect(final).toMatch(/^RUN npm ci --omit=dev\b/m);
  expect(final).toMatch(/^COPY --from=build \S*\/dist \.\/dist$/m);
  expect(final).not.toMatch(/^COPY (src|test|\.) /m);
});

test('the build stage has every source tree the compiled service imports', () => {
  const build = stages[0]!;
  // src/handoff/verify.ts imports the claims schema: tsc emits it into dist/schemas.
  for (const dir of ['src', 'schemas']) expect(build).toMatch(new RegExp(`^COPY ${dir} \\./${dir}$`, 'm'));
});

test('runs as a non-root numeric user', () => {
  const user = /^USER (\d+)(?::(\d+))?$/m.exec(final);
  expect(user).not.toBeNull();
  expect(Number(user![1])).toBeGreaterThan(0);
  // The chart runs the pod as the same uid.
  expect(readFileSync(join(root, 'helm/omnisci-handoff/templates/deployment.yaml'), 'utf8')).toContain(`runAsUser: ${user![1]}`);
});

test('entrypoint serves the config the chart mounts', () => {
  expect(final).toMatch(/^ENTRYPOINT \["node", "dist\/src\/cli\.js"\]$/m);
  expect(final).toMatch(/^CMD \["serve", "--config", "\/etc\/omnisci-handoff\/config\.yaml"\]$/m);
});

test('.dockerignore keeps secrets, caches and dependencies out of the build context', () => {
  const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n');
  for (const p of ['.git', 'node_modules', '.cache', '.data', 'dist']) expect(ignored).toContain(p);
});
