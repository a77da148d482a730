import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { secretName } from '../../src/k8s/layout.js';
import { createKubernetesStore } from '../../src/store/kubernetes.js';
import { createLocalStore, userDir } from '../../src/store/local.js';
import { tempDir, testConfig } from '../support/core.js';
import { k8sConfig, k8sTarget } from '../support/k8s-target.js';
import { storeContract } from '../support/store-contract.js';

storeContract('local directory', async () => {
  const dir = tempDir('oh-contract-');
  return {
    replicas: false,
    store: (o) => createLocalStore(testConfig({ store: { local: { dir }, ...(o?.maxJtis ? { maxJtis: o.maxJtis } : {}) } })),
    sessionFile: (user) => readFile(join(userDir(dir, user), 'session'), 'utf8').catch(() => undefined),
    close: async () => undefined,
  };
});

storeContract('Kubernetes Secrets (loopback API server stand-in, or OMNISCI_TEST_KUBECONFIG)', async () => {
  const t = await k8sTarget();
  const prefix = 'omnisci-contract';
  return {
    replicas: true,
    store: (o) => createKubernetesStore(k8sConfig(t, { secretPrefix: prefix, fastRefresh: false }, o?.maxJtis ? { store: { maxJtis: o.maxJtis } } : {})),
    sessionFile: async (user) => {
      const data = (await t.secret(secretName(prefix, user)))?.data?.session;
      return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
    },
    close: () => t.close(),
  };
});
