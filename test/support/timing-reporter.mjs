/**
 * A jest reporter (jest.config.js) that ends every run with where its time went: each project's total
 * and the slowest files, from jest's own per-file timings. CI stays under 30 minutes only if someone
 * sees what grows; docs/testing.md ("How long") keeps the figures.
 *
 * It also keeps a run from hanging. On 2 cores jest runs the files inside its own process (in band), so
 * one server, socket, child or timer a test leaves behind keeps jest alive after its summary, until
 * CI's own limit. If the process is still up LEFTOVER_GRACE_MS after the run, this lists what is left
 * and exits 1: a leak is a defect that fails the run, and says where it is.
 */
import { relative } from 'node:path';

const LEFTOVER_GRACE_MS = 20_000;

export default class TimingReporter {
  constructor(globalConfig) {
    this.root = globalConfig.rootDir;
    this.started = Date.now();
  }

  onRunComplete(_contexts, results) {
    const projects = new Map();
    const files = [];
    for (const r of results.testResults) {
      const seconds = (r.perfStats.end - r.perfStats.start) / 1000;
      const project = r.displayName?.name ?? 'default';
      projects.set(project, (projects.get(project) ?? 0) + seconds);
      files.push({ seconds, project, file: relative(this.root, r.testFilePath) });
    }
    const s = (x) => `${x.toFixed(x < 10 ? 1 : 0)} s`;
    const lines = [`jest: ${s((Date.now() - this.started) / 1000)} in all; per project (sum of its files): ` +
      [...projects].map(([p, t]) => `${p} ${s(t)}`).join(', ')];
    lines.push('slowest files:', ...files.sort((a, b) => b.seconds - a.seconds).slice(0, 12).map((f) => `  ${s(f.seconds).padStart(6)}  ${f.project}  ${f.file}`));
    process.stderr.write(`\n${lines.join('\n')}\n`);
    setTimeout(failOnLeftovers, LEFTOVER_GRACE_MS).unref();
  }
}

/** Runs only if something other than this timer still holds the event loop. */
function failOnLeftovers() {
  const left = process._getActiveHandles().map(describeHandle);
  process.stderr.write(`\njest: still running ${LEFTOVER_GRACE_MS / 1000} s after the last test; a test left these behind:\n` +
    `  ${process.getActiveResourcesInfo().join(', ')}\n${left.map((l) => `  - ${l}`).join('\n')}\n` +
    'Each must be closed by the test that opened it (afterAll). The run fails.\n');
  process.exit(1);
}

function describeHandle(h) {
  const kind = h?.constructor?.name ?? typeof h;
  if (kind === 'ChildProcess') return `child process ${h.pid}: ${h.spawnargs.join(' ').slice(0, 200)}`;
  if (typeof h.address === 'function' && typeof h.listen === 'function') return `server listening on ${JSON.stringify(h.address())}`;
  if (kind !== 'Socket' && kind !== 'TLSSocket') return kind;
  if (h === process.stdout || h === process.stderr || h === process.stdin) return `${kind} (stdio)`;
  // Which end of what: the server that accepted it, or the request it carried, and its state.
  const server = h.server && (h.server.address() ?? 'closed');
  const request = h._httpMessage;
  const ends = h.remotePort ? `${h.localAddress}:${h.localPort} -> ${h.remoteAddress}:${h.remotePort}` : `local ${h.localPort ?? '?'}, no peer`;
  return [
    `${kind} ${ends}`,
    server ? `accepted by a server ${server === 'closed' ? '(closed since)' : `on ${server.address}:${server.port}`}` : 'outgoing',
    // The path only: a query may carry a test's token (a login_token, a ticket).
    request ? `${request.method ?? 'response'} ${request.host ?? ''}${(request.path ?? request.req?.url ?? '').split('?')[0]}` : '',
    `state ${h.readyState}${h.pending ? ' pending' : ''}${h.connecting ? ' connecting' : ''}`,
  ].filter(Boolean).join(', ');
}
