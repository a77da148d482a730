/** The SessionStore contract (test/support/store-contract.ts) on a real kube-apiserver + etcd, two replicas racing through its optimistic concurrency. */
import { jest } from '@jest/globals';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { secretName } from '../../src/k8s/layout.js';
import { createKubernetesStore } from '../../src/store/kubernetes.js';
import { startKubeApiserver } from '../support/kube-apiserver.js';
import { k8sConfig } from '../support/k8s-target.js';
import { storeContract } from '../support/store-contract.js';

jest.setTimeout(240_000);

storeContract('Kubernetes Secrets (real kube-apiserver)', async () => {
  const k = await startKubeApiserver();
  const kc = new KubeConfig();
  kc.loadFromFile(k.kubeconfigPath);
  const api = kc.makeApiClient(CoreV1Api);
  const namespace = 'hub';
  await api.createNamespace({ body: { metadata: { name: namespace } } });
  const target = { kubeconfig: k.kubeconfigPath, namespace };
  const prefix = 'omnisci-session';
  return {
    replicas: true,
    store: (o) => createKubernetesStore(k8sConfig(target, { secretPrefix: prefix, fastRefresh: false }, o?.maxJtis ? { store: { maxJtis: o.maxJtis } } : {})),
    sessionFile: async (user) => {
      try {
        const data = (await api.readNamespacedSecret({ name: secretName(prefix, user), namespace })).data?.session;
        return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
      } catch {
        return undefined;
      }
    },
    close: () => k.stop(),
  };
});
