// jose 6 and @kubernetes/client-node 2 ship ESM only, so jest runs in native ESM mode
// (node --experimental-vm-modules, see package.json) with ts-jest's ESM preset.
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json' }],
  },
  testEnvironment: 'node',
  // Keep the haste map out of the Python venvs and helm caches under .cache/.
  roots: ['<rootDir>/src', '<rootDir>/test'],
};

export default {
  // Where the time went (per project, slowest files), printed at the end of every run.
  reporters: ['default', '<rootDir>/test/support/timing-reporter.mjs'],
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...common, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'] },
    // The container images built and run with podman (scripts/images/): minutes on a cold machine.
    { ...common, displayName: 'system', testMatch: ['<rootDir>/test/system/**/*.test.ts'] },
    // A real one-node cluster (test/support/k8s-node.ts): root, containerd, minutes. `npm run test:node`.
    { ...common, displayName: 'node', testMatch: ['<rootDir>/test/node/**/*.test.ts'] },
  ],
};
