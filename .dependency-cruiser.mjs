/**
 * The layering of src/ (README, "Source layout"), checked by test/unit/layers.test.ts: a module
 * imports only from the tiers below its own, or from its own folder. Folders of one tier do not
 * import each other (but the shell's, which compose). Only web/ speaks HTTP (express), and only the
 * service's composition root (src/service.ts) builds web/. Type-only imports count.
 */

/** Lowest first. Each entry is one tier: its folders (or top-level modules) as path patterns. */
export const TIERS = [
  { name: 'base', paths: ['^src/(errors|log|retry|metrics|listen)\\.ts$'] },
  { name: 'config', paths: ['^src/config/'] },
  { name: 'handoff', paths: ['^src/handoff/'] },
  { name: 'notebook, k8s, heavydb', paths: ['^src/notebook/', '^src/k8s/', '^src/heavydb/'] },
  { name: 'store', paths: ['^src/store/'] },
  { name: 'hub, webhook', paths: ['^src/hub/', '^src/webhook/'] },
  { name: 'web', paths: ['^src/web/'] },
  { name: 'shell', paths: ['^src/(cli|service|dev)\\.ts$', '^src/doctor/', '^src/deploy/'] },
];

const folderOf = (p) => p.replace(/^\^/, '').replace(/\/$/, '').replace(/\\\./g, '.');

// The shell, on top, composes everything (the web rule below still binds it).
const layering = TIERS.slice(0, -1).flatMap((tier, i) =>
  tier.paths.map((from) => ({
    name: `tier:${folderOf(from)}`,
    comment: `${folderOf(from)} (${tier.name}) imports only from the tiers below it or from itself`,
    severity: 'error',
    from: { path: from },
    to: {
      path: [...TIERS.slice(i).flatMap((t) => t.paths)],
      pathNot: [from],
    },
  })),
);

export default {
  forbidden: [
    ...layering,
    {
      name: 'no-circular',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'express-only-in-web',
      comment: 'only web/ speaks HTTP with express',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/web/' },
      to: { path: 'node_modules/(express|pino-http|@types/express)/' },
    },
    {
      name: 'web-only-from-service',
      comment: 'only the composition root builds the web layer',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/web/', '^src/service\\.ts$'] },
      to: { path: '^src/web/' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'] },
  },
};
