/**
 * Pods shaped like the ones KubeSpawner 7 creates under zero-to-jupyterhub 4 (kubespawner
 * get_pod_manifest/make_pod: labels from _build_pod_labels with the chart's common labels, the raw
 * names in the hub.jupyter.org/username and servername annotations, z2jh's pod fsGroup 100, the
 * block-cloud-metadata init container, a dynamic-storage home volume), wrapped in the
 * AdmissionReview the API server sends to a mutating webhook.
 */
import { createHash, randomUUID } from 'node:crypto';
import { extractSafeName, safeSlug } from '../../src/k8s/slug.js';

export interface PodOptions {
  user: string;
  server?: string;
  /** Extra env entries of the notebook container (appended after KubeSpawner's). */
  env?: Record<string, unknown>[];
  mounts?: Record<string, unknown>[];
  volumes?: Record<string, unknown>[];
  /** z2jh with singleuser.storage.type none and no extra env: the arrays are absent. */
  bare?: boolean;
  fsGroup?: number | null;
  containerName?: string;
  /** A sidecar listed before the notebook container. */
  sidecarFirst?: boolean;
}

/**
 * KubeSpawner 7's `{user_server}` (_expand_user_properties): the 48-character safe slugs joined by
 * '--', or, when that is longer than 48, both names hashed as one (multi_slug).
 */
export function kubespawnerUserServer(user: string, server = ''): string {
  const slug = safeSlug(user, 48);
  if (!server) return slug;
  const joined = `${slug}--${safeSlug(server, 48)}`;
  if (joined.length <= 48) return joined;
  const hash = createHash('sha256').update(Buffer.concat([Buffer.from(user), Buffer.from([0xff]), Buffer.from(server)])).digest('hex').slice(0, 8);
  return `${extractSafeName(user, 17)}--${extractSafeName(server, 17)}---${hash}`;
}

export function kubespawnerPod(o: PodOptions): Record<string, any> {
  const slug = safeSlug(o.user, 48);
  const server = o.server ?? '';
  const userServer = kubespawnerUserServer(o.user, server);
  const hubEnv = [
    ['JPY_API_TOKEN', 'redacted-in-fixture'],
    ['JUPYTERHUB_ACTIVITY_URL', `http://hub:8081/hub/api/users/${encodeURIComponent(o.user)}/activity`],
    ['JUPYTERHUB_API_TOKEN', 'redacted-in-fixture'],
    ['JUPYTERHUB_API_URL', 'http://hub:8081/hub/api'],
    ['JUPYTERHUB_BASE_URL', '/'],
    ['JUPYTERHUB_CLIENT_ID', `jupyterhub-user-${encodeURIComponent(o.user)}`],
    ['JUPYTERHUB_HOST', ''],
    ['JUPYTERHUB_OAUTH_ACCESS_SCOPES', '["access:servers!server=x", "access:servers!user=x"]'],
    ['JUPYTERHUB_OAUTH_CALLBACK_URL', `/user/${encodeURIComponent(o.user)}/oauth_callback`],
    ['JUPYTERHUB_SERVER_NAME', server],
    ['JUPYTERHUB_SERVICE_PREFIX', `/user/${encodeURIComponent(o.user)}/`],
    ['JUPYTERHUB_SERVICE_URL', 'http://0.0.0.0:8888/user/x/'],
    ['JUPYTERHUB_USER', o.user],
    ['JUPYTER_IMAGE', 'quay.io/jupyterhub/k8s-singleuser-sample:4.2.0'],
    ['JUPYTER_IMAGE_SPEC', 'quay.io/jupyterhub/k8s-singleuser-sample:4.2.0'],
    ['MEM_GUARANTEE', '1073741824'],
  ].map(([name, value]) => ({ name, value }));

  const notebook: Record<string, any> = {
    name: o.containerName ?? 'notebook',
    image: 'quay.io/jupyterhub/k8s-singleuser-sample:4.2.0',
    imagePullPolicy: 'IfNotPresent',
    args: ['jupyterhub-singleuser'],
    ports: [{ containerPort: 8888, name: 'notebook-port' }],
    resources: { requests: { memory: '1073741824' } },
    securityContext: { allowPrivilegeEscalation: false, runAsUser: 1000 },
    lifecycle: {},
  };
  if (!o.bare) {
    notebook.env = [...hubEnv, ...(o.env ?? [])];
    notebook.volumeMounts = [{ mountPath: '/home/jovyan', name: `volume-${userServer}` }, ...(o.mounts ?? [])];
  }
  const containers = [notebook];
  if (o.sidecarFirst) containers.unshift({ name: 'proxy-sidecar', image: 'example/sidecar:1', env: [] });

  const fsGroup = o.fsGroup === undefined ? 100 : o.fsGroup;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `jupyter-${userServer}`,
      namespace: 'hub',
      labels: {
        app: 'jupyterhub',
        'app.kubernetes.io/component': 'singleuser-server',
        'app.kubernetes.io/instance': 'jhub',
        'app.kubernetes.io/managed-by': 'kubespawner',
        'app.kubernetes.io/name': 'jupyterhub',
        chart: 'jupyterhub-4.2.0',
        component: 'singleuser-server',
        heritage: 'jupyterhub',
        'helm.sh/chart': 'jupyterhub-4.2.0',
        'hub.jupyter.org/network-access-hub': 'true',
        'hub.jupyter.org/servername': server ? safeSlug(server, 48) : '',
        'hub.jupyter.org/username': slug,
        release: 'jhub',
      },
      annotations: {
        'hub.jupyter.org/username': o.user,
        ...(server ? { 'hub.jupyter.org/servername': server } : {}),
      },
    },
    spec: {
      automountServiceAccountToken: false,
      affinity: {
        nodeAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            { weight: 100, preference: { matchExpressions: [{ key: 'hub.jupyter.org/node-purpose', operator: 'In', values: ['user'] }] } },
          ],
        },
      },
      containers,
      initContainers: [
        {
          name: 'block-cloud-metadata',
          image: 'quay.io/jupyterhub/k8s-network-tools:4.2.0',
          command: ['iptables', '--append', 'OUTPUT', '--protocol', 'tcp', '--destination', '169.254.169.254', '--destination-port', '80', '--jump', 'DROP'],
          securityContext: { capabilities: { add: ['NET_ADMIN'] }, privileged: true, runAsUser: 0 },
        },
      ],
      priorityClassName: 'jhub-default-priority',
      restartPolicy: 'OnFailure',
      schedulerName: 'jhub-user-scheduler',
      securityContext: fsGroup === null ? {} : { fsGroup },
      serviceAccountName: 'default',
      tolerations: [
        { effect: 'NoSchedule', key: 'hub.jupyter.org/dedicated', operator: 'Equal', value: 'user' },
        { effect: 'NoSchedule', key: 'hub.jupyter.org_dedicated', operator: 'Equal', value: 'user' },
      ],
      ...(o.bare
        ? {}
        : {
            volumes: [
              { name: `volume-${userServer}`, persistentVolumeClaim: { claimName: `claim-${userServer}` } },
              ...(o.volumes ?? []),
            ],
          }),
    },
  };
}

export function admissionReview(object: unknown, over: Record<string, unknown> = {}): Record<string, any> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: (object as { metadata?: { name?: string } })?.metadata?.name,
      namespace: 'hub',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:hub:hub', groups: ['system:serviceaccounts', 'system:serviceaccounts:hub', 'system:authenticated'] },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
      ...over,
    },
  };
}
