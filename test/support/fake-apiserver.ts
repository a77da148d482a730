/**
 * A loopback stand-in for kube-apiserver, limited to what the Kubernetes store uses: core/v1
 * Secrets (get, list, create, update, delete) and Pods (list, get, patch), with the real
 * semantics a client can observe: bearer-token authentication (401), per verb+resource
 * authorization (403 with the real Forbidden Status), resourceVersion optimistic concurrency (409
 * Conflict), 409 AlreadyExists on create, 404 NotFound, delete preconditions, label and field
 * selectors, paginated lists, and the Status body shape of every failure.
 *
 * Test controls that a real server offers only through load (scheduling, overload) are explicit:
 * `gate` holds requests until n have arrived (a deterministic interleaving), `failNext` answers
 * the next requests with 429/5xx. A later issue runs the same store tests against a real
 * kube-apiserver through a kubeconfig (see test/support/k8s-target.ts).
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import fastJsonPatch from 'fast-json-patch';

type Obj = { metadata: Record<string, any>; [k: string]: any };
export type Verb = 'get' | 'list' | 'create' | 'update' | 'delete' | 'patch';
type Resource = 'secrets' | 'pods';

const KINDS: Record<Resource, string> = { secrets: 'Secret', pods: 'Pod' };
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MAX_SECRET_BYTES = 1024 * 1024;

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
  body() {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

export interface RequestRecord {
  verb: Verb;
  resource: Resource;
  namespace: string;
  name?: string;
  code: number;
}

export interface FakeApiServer {
  url: string;
  token: string;
  /** The identity the token stands for (shown in Forbidden messages). */
  user: string;
  requests: RequestRecord[];
  /** Writes a kubeconfig for this server into dir and returns its path. */
  writeKubeconfig(dir: string, namespace: string, token?: string): string;
  createNamespace(name: string): void;
  /** Denies (or with allow=true grants again) a verb on a resource, like a missing RBAC rule. */
  forbid(verb: Verb, resource: Resource, allow?: boolean): void;
  /** The next requests of that verb+resource answer these statuses instead (429 carries Retry-After: 0). */
  failNext(verb: Verb, resource: Resource, statuses: number[]): void;
  /**
   * The next n requests of that verb+resource are carried out, but answered 504 Timeout, as a real
   * API server does when its handler deadline passes after the write reached etcd.
   */
  timeoutAfterCommit(verb: Verb, resource: Resource, n: number): void;
  /** The next n requests of that verb+resource wait until all n have arrived, then proceed together. */
  gate(verb: Verb, resource: Resource, n: number): void;
  /** Stored object (a copy), as the server holds it. */
  object(resource: Resource, namespace: string, name: string): Obj | undefined;
  /** Stores an object directly (e.g. a running pod, which only a kubelet could produce). */
  put(resource: Resource, namespace: string, obj: Obj): Obj;
  close(): Promise<void>;
}

function parseSelector(sel: string): ((labels: Record<string, string>) => boolean)[] {
  if (!sel) return [];
  return sel.split(',').map((term) => {
    const t = term.trim();
    let m: RegExpMatchArray | null;
    if ((m = t.match(/^([^!=]+)!=(.*)$/))) {
      const [, k, v] = m as [string, string, string];
      return (l) => l[k.trim()] !== v.trim();
    }
    if ((m = t.match(/^([^!=]+)==?(.*)$/))) {
      const [, k, v] = m as [string, string, string];
      return (l) => l[k.trim()] === v.trim();
    }
    if (t.startsWith('!')) return (l) => !(t.slice(1) in l);
    return (l) => t in l;
  });
}

function fieldValue(obj: Obj, field: string): string | undefined {
  switch (field) {
    case 'metadata.name':
      return obj.metadata.name;
    case 'metadata.namespace':
      return obj.metadata.namespace;
    case 'status.phase':
      return obj.status?.phase;
    default:
      throw new ApiError(400, 'BadRequest', `field label not supported: ${field}`);
  }
}

function mergePatch(target: any, patch: any): any {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, 'BadRequest', 'the request body is not valid JSON');
  }
}

export async function startFakeApiServer(opts: { namespaces?: string[] } = {}): Promise<FakeApiServer> {
  const token = `fake-${randomUUID()}`;
  const user = 'system:serviceaccount:hub:omnisci-handoff';
  const namespaces = new Set(opts.namespaces ?? ['default']);
  const store = new Map<string, Obj>(); // `${resource}/${ns}/${name}`
  const denied = new Set<string>();
  const failures = new Map<string, number[]>();
  const gates = new Map<string, { n: number; waiting: (() => void)[] }>();
  const lateTimeouts = new Map<string, number>();
  const requests: RequestRecord[] = [];
  let rv = 1000;

  const key = (r: Resource, ns: string, name: string) => `${r}/${ns}/${name}`;
  const clone = <T>(o: T): T => structuredClone(o);
  const stamp = (obj: Obj, ns: string, existing?: Obj) => {
    obj.metadata.namespace = ns;
    obj.metadata.uid = existing?.metadata.uid ?? randomUUID();
    obj.metadata.creationTimestamp =
      existing?.metadata.creationTimestamp ?? new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace('.000', '');
    obj.metadata.resourceVersion = String(++rv);
    delete obj.metadata.managedFields;
  };
  const notFound = (r: Resource, name: string) =>
    new ApiError(404, 'NotFound', `${r} "${name}" not found`, { name, kind: r });
  const requireNamespace = (ns: string) => {
    if (!namespaces.has(ns)) throw new ApiError(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' });
  };

  function validateSecret(obj: Obj, name: string) {
    const causes: string[] = [];
    if (!DNS_SUBDOMAIN.test(name) || name.length > 253)
      causes.push(`metadata.name: Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`);
    let size = 0;
    for (const [k, v] of Object.entries((obj.data ?? {}) as Record<string, unknown>)) {
      if (typeof v !== 'string' || !BASE64.test(v))
        throw new ApiError(400, 'BadRequest', `Secret in version "v1" cannot be handled as a Secret: illegal base64 data at key "${k}"`);
      if (!DATA_KEY.test(k)) causes.push(`data[${k}]: Invalid value: "${k}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`);
      size += Buffer.from(v, 'base64').length;
    }
    if (size > MAX_SECRET_BYTES) causes.push(`data: Too long: must have at most ${MAX_SECRET_BYTES} bytes`);
    if (causes.length)
      throw new ApiError(422, 'Invalid', `Secret "${name}" is invalid: ${causes.join(', ')}`, { name, kind: 'Secret' });
  }

  function list(r: Resource, ns: string, q: URLSearchParams) {
    const labels = parseSelector(q.get('labelSelector') ?? '');
    const fields = (q.get('fieldSelector') ?? '')
      .split(',')
      .filter(Boolean)
      .map((t) => {
        const neg = t.includes('!=');
        const [f, v] = t.split(neg ? '!=' : /==?/) as [string, string];
        return (o: Obj) => (fieldValue(o, f) === v) !== neg;
      });
    let items = [...store.entries()]
      .filter(([k]) => k.startsWith(`${r}/${ns}/`))
      .map(([, o]) => o)
      .filter((o) => labels.every((t) => t(o.metadata.labels ?? {})) && fields.every((t) => t(o)))
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    const after = q.get('continue');
    if (after) {
      const last = Buffer.from(after, 'base64url').toString('utf8');
      items = items.filter((o) => o.metadata.name > last);
    }
    const limit = Number(q.get('limit') ?? 0);
    const page = limit > 0 ? items.slice(0, limit) : items;
    const more = limit > 0 && items.length > limit;
    return {
      kind: `${KINDS[r]}List`,
      apiVersion: 'v1',
      metadata: {
        resourceVersion: String(rv),
        ...(more ? { continue: Buffer.from(page.at(-1)!.metadata.name).toString('base64url') } : {}),
      },
      items: page.map(clone),
    };
  }

  async function handle(req: IncomingMessage, verb: Verb, r: Resource, ns: string, name: string | undefined) {
    const url = new URL(req.url ?? '/', 'http://x');
    switch (verb) {
      case 'list':
        return [200, list(r, ns, url.searchParams)] as const;
      case 'get': {
        const o = store.get(key(r, ns, name!));
        if (!o) throw notFound(r, name!);
        return [200, clone(o)] as const;
      }
      case 'create': {
        requireNamespace(ns);
        const body = (await readBody(req)) as Obj | undefined;
        if (!body || typeof body !== 'object' || typeof body.metadata?.name !== 'string')
          throw new ApiError(422, 'Invalid', `${KINDS[r]} "" is invalid: metadata.name: Required value: name or generateName is required`, { kind: KINDS[r] });
        const n = body.metadata.name;
        if (body.metadata.namespace && body.metadata.namespace !== ns)
          throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
        if (r === 'secrets') validateSecret(body, n);
        if (store.has(key(r, ns, n))) throw new ApiError(409, 'AlreadyExists', `${r} "${n}" already exists`, { name: n, kind: r });
        const o = { ...clone(body), apiVersion: 'v1', kind: KINDS[r] };
        stamp(o, ns);
        store.set(key(r, ns, n), o);
        return [201, clone(o)] as const;
      }
      case 'update': {
        const body = (await readBody(req)) as Obj | undefined;
        if (!body || typeof body !== 'object' || !body.metadata) throw new ApiError(400, 'BadRequest', 'the body of the request is not an object');
        if (body.metadata.name !== name)
          throw new ApiError(400, 'BadRequest', `the name of the object (${body.metadata.name}) does not match the name on the URL (${name})`);
        const existing = store.get(key(r, ns, name!));
        if (!existing) throw notFound(r, name!);
        const want = body.metadata.resourceVersion;
        if (want && want !== existing.metadata.resourceVersion)
          throw new ApiError(
            409,
            'Conflict',
            `Operation cannot be fulfilled on ${r} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
            { name, kind: r },
          );
        if (r === 'secrets') validateSecret(body, name!);
        const o = { ...clone(body), apiVersion: 'v1', kind: KINDS[r] };
        stamp(o, ns, existing);
        store.set(key(r, ns, name!), o);
        return [200, clone(o)] as const;
      }
      case 'delete': {
        const body = (await readBody(req)) as { preconditions?: { resourceVersion?: string; uid?: string } } | undefined;
        const existing = store.get(key(r, ns, name!));
        if (!existing) throw notFound(r, name!);
        const pre = body?.preconditions;
        if (pre?.resourceVersion && pre.resourceVersion !== existing.metadata.resourceVersion)
          throw new ApiError(
            409,
            'Conflict',
            `Operation cannot be fulfilled on ${r} "${name}": Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${existing.metadata.resourceVersion}`,
            { name, kind: r },
          );
        if (pre?.uid && pre.uid !== existing.metadata.uid)
          throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${r} "${name}": Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${existing.metadata.uid}`, { name, kind: r });
        store.delete(key(r, ns, name!));
        return [200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: r, uid: existing.metadata.uid } }] as const;
      }
      case 'patch': {
        const existing = store.get(key(r, ns, name!));
        const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const body = await readBody(req);
        if (!existing) throw notFound(r, name!);
        let o: Obj;
        if (type === 'application/merge-patch+json' || type === 'application/strategic-merge-patch+json') {
          o = mergePatch(clone(existing), body);
        } else if (type === 'application/json-patch+json') {
          try {
            o = fastJsonPatch.applyPatch(clone(existing), body as fastJsonPatch.Operation[], true).newDocument;
          } catch (e) {
            throw new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${(e as Error).message}`);
          }
        } else {
          throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`);
        }
        stamp(o, ns, existing);
        store.set(key(r, ns, name!), o);
        return [200, clone(o)] as const;
      }
    }
  }

  const server = createServer((req, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const m = url.pathname.match(/^\/api\/v1\/namespaces\/([^/]+)\/(secrets|pods)(?:\/([^/]+))?$/);
      let code = 500;
      let rec: RequestRecord | undefined;
      let extraHeaders: Record<string, string> = {};
      let payload: unknown;
      try {
        if (req.headers.authorization !== `Bearer ${token}`) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
        if (!m) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
        const [, ns, r, rawName] = m as unknown as [string, string, Resource, string | undefined];
        const name = rawName === undefined ? undefined : decodeURIComponent(rawName);
        const verb: Verb | undefined = ((
          { GET: name ? 'get' : 'list', POST: name ? undefined : 'create', PUT: name && 'update', DELETE: name && 'delete', PATCH: name && 'patch' }
        ) as Record<string, Verb | undefined>)[req.method ?? ''];
        if (!verb) throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
        rec = { verb, resource: r, namespace: ns, ...(name ? { name } : {}), code: 0 };
        const gk = `${verb} ${r}`;
        const g = gates.get(gk);
        if (g) {
          await new Promise<void>((resolve) => {
            g.waiting.push(resolve);
            if (g.waiting.length >= g.n) {
              gates.delete(gk);
              g.waiting.forEach((w) => w());
            }
          });
        }
        if (denied.has(gk))
          throw new ApiError(
            403,
            'Forbidden',
            `${r}${name ? ` "${name}"` : ''} is forbidden: User "${user}" cannot ${verb} resource "${r}" in API group "" in the namespace "${ns}"`,
            { ...(name ? { name } : {}), kind: r },
          );
        const injected = failures.get(gk)?.shift();
        if (injected === 429)
          throw new ApiError(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds: 0 }, { 'Retry-After': '0' });
        if (injected) throw new ApiError(injected, injected === 503 ? 'ServiceUnavailable' : 'InternalError', 'Internal error occurred: injected failure');
        [code, payload] = await handle(req, verb, r, ns, name);
        const late = lateTimeouts.get(gk) ?? 0;
        if (late > 0) {
          lateTimeouts.set(gk, late - 1);
          throw new ApiError(504, 'Timeout', 'Timeout: request did not complete within the allotted timeout', { retryAfterSeconds: 0 });
        }
      } catch (e) {
        const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', `Internal error occurred: ${(e as Error).message}`);
        code = err.code;
        payload = err.body();
        extraHeaders = err.headers;
      }
      if (rec) requests.push({ ...rec, code });
      res.writeHead(code, { 'Content-Type': 'application/json', ...extraHeaders });
      res.end(JSON.stringify(payload));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    token,
    user,
    requests,
    writeKubeconfig(dir, namespace, tok = token) {
      const path = join(dir, `kubeconfig-${randomUUID()}.yaml`);
      writeFileSync(
        path,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters:',
          '- name: fake',
          '  cluster:',
          `    server: ${url}`,
          // Plain HTTP on loopback; client-node only accepts http:// with this flag.
          '    insecure-skip-tls-verify: true',
          'users:',
          '- name: fake',
          '  user:',
          `    token: ${tok}`,
          'contexts:',
          '- name: fake',
          '  context:',
          '    cluster: fake',
          '    user: fake',
          `    namespace: ${namespace}`,
          'current-context: fake',
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      return path;
    },
    createNamespace: (n) => void namespaces.add(n),
    forbid(verb, resource, allow = false) {
      if (allow) denied.delete(`${verb} ${resource}`);
      else denied.add(`${verb} ${resource}`);
    },
    failNext(verb, resource, statuses) {
      failures.set(`${verb} ${resource}`, [...(failures.get(`${verb} ${resource}`) ?? []), ...statuses]);
    },
    timeoutAfterCommit(verb, resource, n) {
      lateTimeouts.set(`${verb} ${resource}`, n);
    },
    gate(verb, resource, n) {
      gates.set(`${verb} ${resource}`, { n, waiting: [] });
    },
    object: (r, ns, name) => {
      const o = store.get(key(r, ns, name));
      return o && clone(o);
    },
    put(r, ns, obj) {
      namespaces.add(ns);
      const o = { ...clone(obj), apiVersion: 'v1', kind: KINDS[r] };
      stamp(o, ns, store.get(key(r, ns, obj.metadata.name)));
      store.set(key(r, ns, obj.metadata.name), o);
      return clone(o);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}
