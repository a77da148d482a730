/**
 * Offline validation of rendered Kubernetes objects against the Kubernetes OpenAPI schemas:
 * kubernetes-models' validators (generated from the OpenAPI spec: types, required fields, enums,
 * formats; cert-manager and prometheus-operator CRD schemas too) plus an unknown-field check like
 * `kubectl --validate=strict`, walking @kubernetes/client-node's generated model type maps.
 */
import * as k8s from '@kubernetes/client-node';

interface Attr {
  name: string;
  baseName: string;
  type: string;
}
type ModelClass = { getAttributeTypeMap(): Attr[] };

const MODEL_PACKAGES: Record<string, string> = {
  'cert-manager.io': '@kubernetes-models/cert-manager/cert-manager.io',
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator/monitoring.coreos.com',
};

async function modelValidate(obj: { apiVersion: string; kind: string }): Promise<string[]> {
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
  const base = MODEL_PACKAGES[group!] ?? `kubernetes-models/${group ? `${group}/` : ''}`;
  const mod = (await import(`${base.endsWith('/') ? base : `${base}/`}${version}/${obj.kind}`)) as Record<
    string,
    new (d: unknown) => { validate(): void }
  >;
  const Model = mod[obj.kind];
  if (!Model) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    const errors = (e as { errors?: { instancePath: string; message: string }[] }).errors;
    return errors ? errors.map((x) => `${x.instancePath} ${x.message}`) : [String(e)];
  }
}

const models = k8s as unknown as Record<string, ModelClass | undefined>;

function unknownFields(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, array[1]!, `${path}/${i}`, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === 'object') for (const [k, v] of Object.entries(value)) unknownFields(v, map[1]!, `${path}/${k}`, out);
    return;
  }
  const model = models[type];
  if (!model?.getAttributeTypeMap || typeof value !== 'object') return;
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value as object)) {
    const t = attrs.get(k);
    if (t === undefined) out.push(`${path}/${k} is not a field of ${type}`);
    else unknownFields(v, t, `${path}/${k}`, out);
  }
}

/** Problems of one object ([] when valid). */
export async function validateK8sObject(obj: { apiVersion: string; kind: string; [k: string]: unknown }): Promise<string[]> {
  const problems = await modelValidate(obj);
  const version = obj.apiVersion.split('/').pop()!;
  const modelName = `${version[0]!.toUpperCase()}${version.slice(1)}${obj.kind}`;
  if (models[modelName]) unknownFields(obj, modelName, '', problems);
  else if (!MODEL_PACKAGES[obj.apiVersion.split('/')[0]!]) problems.push(`no model for ${obj.apiVersion} ${obj.kind}`);
  return problems;
}
