// The images' contract as written in Dockerfile, images/singleuser/Containerfile and .dockerignore.
// test/system/ builds both images with podman and runs them; these checks explain a failure there fast.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';

const root = process.cwd();

interface Stage {
  from: string;
  lines: string[];
}

/** Instructions (continuations joined, comments dropped): the ARGs before the first FROM, then each stage's. */
function parse(file: string): { args: string[]; stages: Stage[] } {
  const lines = readFileSync(join(root, file), 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const first = lines.findIndex((l) => l.startsWith('FROM '));
  const stages: Stage[] = [];
  for (const l of lines.slice(first)) {
    if (l.startsWith('FROM ')) stages.push({ from: l.slice(5), lines: [] });
    else stages.at(-1)!.lines.push(l);
  }
  return { args: lines.slice(0, first), stages };
}

/** COPY sources taken from the build context (not --from another stage). */
function contextSources(stages: Stage[]): string[] {
  return stages.flatMap((s) =>
    s.lines
      .filter((l) => l.startsWith('COPY ') && !/--from=/.test(l))
      .flatMap((l) => l.split(/\s+/).slice(1).filter((w) => !w.startsWith('--')).slice(0, -1)),
  );
}

const dockerfile = parse('Dockerfile');
const final = dockerfile.stages.at(-1)!;
const build = dockerfile.stages[0]!;
const singleuser = parse('images/singleuser/Containerfile');
const under = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

function srcFiles(dir = join(root, 'src')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? srcFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

test('both stages start from the BASE build arg, node:24-slim unless overridden', () => {
  expect(dockerfile.args).toContain('ARG BASE=node:24-slim');
  expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
  for (const s of dockerfile.stages) expect(s.from).toMatch(/^\$\{BASE\}( AS \w+)?$/);
});

test('the final image installs production dependencies only and copies the build output', () => {
  expect(final.lines).toContainEqual(expect.stringMatching(/^RUN npm ci --omit=dev\b/));
  expect(final.lines).toContain('COPY --from=build /src/dist ./dist');
  expect(contextSources([final]).filter((s) => !['package.json', 'package-lock.json'].includes(s) && !s.startsWith('helm/'))).toEqual([]);
});

test('dependencies are installed before any source is copied (a source change reuses the npm ci layers)', () => {
  for (const stage of [build, final]) {
    const ci = stage.lines.findIndex((l) => /^RUN npm ci\b/.test(l));
    expect(ci).toBeGreaterThan(0);
    const before = stage.lines.slice(0, ci).filter((l) => l.startsWith('COPY '));
    expect(before).toEqual(['COPY package.json package-lock.json ./']);
  }
});

test('the build stage has every source tree the compiled service imports', () => {
  // Relative imports leaving src/ (e.g. a JSON schema) name trees tsc needs next to src/.
  const trees = new Set(['src']);
  for (const file of srcFiles()) {
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      trees.add(relative(root, resolve(dirname(file), spec!)).split('/')[0]!);
    }
  }
  const copied = contextSources([build]);
  for (const tree of trees) expect([tree, copied.includes(tree)]).toEqual([tree, true]);
});

test('files the service reads next to its code at run time are copied into the final image', () => {
  // new URL('<relative>', import.meta.url) from dist/src/…/x.js, i.e. relative to the repository root.
  const needed = srcFiles()
    .flatMap((file) =>
      [...readFileSync(file, 'utf8').matchAll(/new URL\('(\.{1,2}\/[^']+)', import\.meta\.url\)/g)].map(([, rel]) =>
        posix.join('dist', relative(root, dirname(file)), rel!),
      ),
    )
    .filter((p) => !under(p, 'dist'));
  expect(needed.length).toBeGreaterThan(0);
  const copied = contextSources([final]);
  for (const path of needed) expect([path, copied.some((c) => under(path, c))]).toEqual([path, true]);
});

test('runs as a non-root numeric user, the uid the chart runs the pod as', () => {
  const user = final.lines.map((l) => /^USER (\d+)(?::(\d+))?$/.exec(l)).find(Boolean);
  expect(user).toBeTruthy();
  expect(Number(user![1])).toBeGreaterThan(0);
  expect(readFileSync(join(root, 'helm/omnisci-handoff/templates/deployment.yaml'), 'utf8')).toContain(`runAsUser: ${user![1]}`);
});

test('entrypoint serves the config the chart mounts', () => {
  expect(final.lines).toContain('ENTRYPOINT ["node", "dist/src/cli.js"]');
  expect(final.lines).toContain('CMD ["serve", "--config", "/etc/omnisci-handoff/config.yaml"]');
});

test('.dockerignore is an allowlist: exactly what the images COPY, no secrets, caches, dependencies or tests', () => {
  const patterns = readFileSync(join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  expect(patterns[0]).toBe('*');
  const allowed = patterns.slice(1).map((p) => {
    expect(p).toMatch(/^![^*?[\]]+$/);
    return p.slice(1);
  });
  const sources = [...contextSources(dockerfile.stages), ...contextSources(singleuser.stages)];
  for (const s of sources) expect([s, allowed.some((a) => under(s, a))]).toEqual([s, true]);
  for (const a of allowed) expect([a, sources.some((s) => under(s, a) || under(a, s))]).toEqual([a, true]);
  for (const a of allowed) {
    for (const part of a.split('/')) expect(['.git', '.data', '.cache', 'node_modules', 'dist', 'test', 'coverage']).not.toContain(part);
  }
});

test('the single-user image installs the pins the suite tests the extension with', () => {
  expect(singleuser.args).toContain('ARG BASE=debian:bookworm-slim');
  const { lines } = singleuser.stages[0]!;
  const copy = lines.find((l) => l.startsWith('COPY scripts/deps/omnisci-extension.requirements.txt '));
  expect(copy).toBeDefined();
  const run = lines.find((l) => l.includes('pip install')) ?? '';
  expect(run).toMatch(new RegExp(`pip install [^&]*--no-deps -r ${copy!.split(' ')[2]}`));
  // The two packages installed on top of the list, as scripts/deps/omnisci-extension.sh does.
  const late = /^late="([^"]+)"$/m.exec(readFileSync(join(root, 'scripts/deps/omnisci-extension.sh'), 'utf8'))![1]!;
  expect(run).toContain(`--no-deps ${late}`);
  expect(lines).toContainEqual(expect.stringMatching(/^USER 1000:100$/));
});
