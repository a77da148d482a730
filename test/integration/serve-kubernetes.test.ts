/**
 * The composed service in Kubernetes mode: a handoff over HTTP lands in the user's Secret (on the
 * loopback API server stand-in of test/support/fake-apiserver.ts, which implements the Secrets
 * endpoints with real status codes and conflicts), and the webhook, on its own HTTPS port, patches a
 * KubeSpawner pod to read that Secret — with no literal secret in the patch.
 */
import { request } from 'node:https';
import { safeSlug } from '../../src/k8s/slug.js';
import { admissionReview, kubespawnerPod } from '../support/kubespawner-pod.js';
import { k8sConfig, k8sTarget, type K8sTarget } from '../support/k8s-target.js';
import { makeCert } from '../support/tls.js';
import { hmacKey, mint, postToken, randomSessionId, startTestService, type TestService } from '../support/core.js';

let target: K8sTarget;
let svc: TestService;

beforeAll(async () => {
  target = await k8sTarget();
  const cert = makeCert(target.dir, 'webhook');
  const config = k8sConfig(target, { fastRefresh: false }, {
    listen: { port: 0, internal: { port: 0 } },
    token: { issuer: 'immerse', audience: 'jupyterhub', type: 'omnisci-handoff+jwt', algorithms: ['HS256'], keys: { hmacSecretEnv: 'TEST_HMAC' } },
    redirect: { hubPublicUrl: 'https://hub.test' },
    omnisci: { host: 'omnisci.test', port: 6278, protocol: 'http' },
    webhook: { enabled: true, host: '127.0.0.1', port: 0, certFile: cert.certFile, keyFile: cert.keyFile },
  });
  svc = await startTestService(config, { env: { TEST_HMAC: 'x'.repeat(32) } });
});

afterAll(async () => {
  await svc?.close();
  await target?.close();
});

function review(body: unknown): Promise<{ status: number; json: Record<string, any> }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: svc.webhookPort, path: '/mutate', method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, any> }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

test('handoff → Secret; pod CREATE → patched to read it', async () => {
  const session = randomSessionId();
  const token = await mint(hmacKey('HS256', 'x'.repeat(32)), { issuer: 'immerse', audience: 'jupyterhub', subject: 'user@email.com', omnisci: { session } });
  const res = await postToken(svc.url, token);
  expect(res.status).toBe(303);
  expect(res.headers.get('location')).toBe('https://hub.test/user/user%40email.com/lab?omnisci&reset');

  const secretName = `${svc.config.store.kubernetes.secretPrefix}-${safeSlug('user@email.com')}`;
  expect(secretName.endsWith('user-email-com---0925f997')).toBe(true);
  const secret = await target.secret(secretName);
  const data = secret?.data ?? {};
  expect(JSON.parse(Buffer.from(data[svc.config.notebook.sessionFileName] as string, 'base64').toString())).toEqual({ session, query: '' });
  expect(Buffer.from(data.host as string, 'base64').toString()).toBe('omnisci.test');

  const pod = kubespawnerPod({ user: 'user@email.com' });
  const answer = await review(admissionReview(pod));
  expect(answer.status).toBe(200);
  expect(answer.json.response.allowed).toBe(true);
  const patch = Buffer.from(answer.json.response.patch as string, 'base64').toString();
  expect(patch).toContain(secretName);
  expect(patch).toContain('secretKeyRef');
  expect(patch).not.toContain(session);
  expect(patch).not.toContain('omnisci.test');

  for (const line of svc.logs.lines) {
    expect(line).not.toContain(session);
    expect(line).not.toContain(token);
  }
  const metrics = await (await fetch(`${svc.internalUrl}metrics`)).text();
  expect(metrics).toMatch(/omnisci_handoff_handoffs_total\{outcome="stored"\} 1/);
  expect(metrics).toMatch(/omnisci_handoff_webhook_admissions_total\{outcome="patched"\} 1/);
});
