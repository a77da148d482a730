/**
 * A jest reporter (jest.config.js) that ends every run with where its time went: each project's total
 * and the slowest files, from jest's own per-file timings. CI stays under 30 minutes only if someone
 * sees what grows; docs/testing.md ("How long") keeps the figures.
 */
import { relative } from 'node:path';

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
  }
}
