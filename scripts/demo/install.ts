/**
 * What the demo needs before it starts anything: the Python venvs (scripts/deps/*.sh, idempotent and
 * cached under .cache/) and the built service (dist/). A first run installs them, showing each line
 * the script prints as it goes; later runs check stamps and start in seconds. With --no-install a
 * missing part fails the step instead (the test suite installs them itself).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Processes } from './processes.ts';
import { step, StepFailed, type Progress } from './steps.ts';

export interface Dependency {
  /** Log name: logs/install-<name>.log. */
  name: string;
  /** The scripts/deps/*.sh that installs it, relative to the repository root. */
  script: string;
  /** The file the script writes when done; the script runs again when it is older than the script or `sources`. */
  stamp: string;
  sources?: string[];
  /** The step's title. */
  what: string;
  /** Whether what the demo runs is there. */
  ready(): boolean;
}

/** A dependency script needs running when its stamp is missing or older than the script or its sources (files or directories). */
function stale(stamp: string, sources: string[]): boolean {
  if (!existsSync(stamp)) return true;
  const at = statSync(stamp).mtimeMs;
  return sources.some((s) => existsSync(s) && newest(s) > at);
}

/** Runs `name` while showing each new line of its log as what the step is doing. */
async function runShowingLog(processes: Processes, progress: Progress, name: string, cmd: string, args: string[]): Promise<void> {
  const log = processes.logFile(name);
  let shown = 0;
  const poll = setInterval(() => {
    let lines: string[];
    try {
      lines = readFileSync(log, 'utf8').split('\n').slice(0, -1);
    } catch {
      return;
    }
    for (const l of lines.slice(shown)) if (l.trim()) progress.doing(l.trim());
    shown = lines.length;
  }, 1000);
  try {
    await processes.run(name, cmd, args);
  } finally {
    clearInterval(poll);
  }
}

export async function installed(processes: Processes, root: string, d: Dependency, noInstall: boolean): Promise<void> {
  await step(d.what, async (progress) => {
    const stamp = join(root, d.stamp);
    if (noInstall) {
      if (!d.ready()) throw new StepFailed(`${d.stamp} is missing: run \`bash ${d.script}\` (or the demo without --no-install)`);
      progress.note('installed');
      return;
    }
    if (!stale(stamp, [join(root, d.script), ...(d.sources ?? []).map((s) => join(root, s))]) && d.ready()) {
      progress.note('installed');
      return;
    }
    progress.note(existsSync(stamp) ? 'updating' : 'first run: installing (a few minutes; logs/install-*.log has the details)');
    await runShowingLog(processes, progress, `install-${d.name}`, 'bash', [join(root, d.script)]);
  });
}

/** The newest modification time of a file, or of the files under a directory (what a build installs or caches left out). */
function newest(path: string): number {
  if (!statSync(path).isDirectory()) return statSync(path).mtimeMs;
  let t = 0;
  for (const e of readdirSync(path, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === '__pycache__' || e.name === 'labextension') continue;
    t = Math.max(t, newest(join(path, e.name)));
  }
  return t;
}

/** dist/ from src/ (tsc) unless it is newer than every source. */
export async function built(processes: Processes, root: string, cli: string, noInstall: boolean): Promise<void> {
  await step('build the service (dist/)', async (progress) => {
    const sources = Math.max(newest(join(root, 'src')), newest(join(root, 'tsconfig.json')));
    if (existsSync(cli) && (noInstall || statSync(cli).mtimeMs >= sources)) {
      progress.note('up to date');
      return;
    }
    if (noInstall) throw new StepFailed(`${relative(root, cli)} is missing: run \`npm run build\``);
    progress.note('compiling');
    await processes.run('build', process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')]);
  });
}
