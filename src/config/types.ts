/** The resolved configuration (defaults filled in). Mirrors src/config/schema.ts. */
import type { ALGORITHMS } from './schema.js';

export type Algorithm = (typeof ALGORITHMS)[number];
export type OmnisciProtocol = 'binary' | 'http' | 'https';
export type SessionFormat = 'json' | 'text';

export interface Config {
  listen: { host: string; port: number; basePath: string; trustProxy: boolean; shutdownGraceSeconds: number };
  token: {
    issuer: string;
    audience: string;
    algorithms: Algorithm[];
    type: string;
    revokeType: string;
    maxTokenBytes: number;
    maxLifetimeSeconds: number;
    clockToleranceSeconds: number;
    sessionPattern: string;
    keys: {
      jwksUrl?: string;
      jwksTimeoutMs: number;
      jwksCooldownSeconds: number;
      jwksCacheMaxAgeSeconds: number;
      publicKeyFiles: string[];
      hmacSecretFile?: string;
      hmacSecretEnv?: string;
    };
  };
  user: { claim: string; lowercase: boolean; stripEmailDomain: boolean; pattern?: string };
  omnisci: {
    protocol: OmnisciProtocol;
    host: string;
    port: number;
    database: string;
    allowedHosts: string[];
    allowedPorts: number[];
  };
  notebook: {
    sessionFormat: SessionFormat;
    sessionDir: string;
    sessionFileName: string;
    env: { protocol: string; host: string; port: string };
  };
  redirect: { hubPublicUrl: string; labUrlTemplate: string };
  store: {
    backend: 'local' | 'kubernetes';
    local: { dir: string; userAccess: 'none' | 'group' };
    maxJtis: number;
    kubernetes: {
      namespace?: string;
      secretPrefix: string;
      kubeconfig?: string;
      requestTimeoutMs: number;
      retries: number;
      fastRefresh: boolean;
      gcMaxAgeDays: number;
      gcIntervalMinutes: number;
    };
  };
  webhook: {
    enabled: boolean;
    host: string;
    port: number;
    certFile?: string;
    keyFile?: string;
    certReloadSeconds: number;
    containerName: string;
    jupyterConfigMap: string;
    jupyterConfigDir: string;
    maxBodyBytes: number;
  };
  hub: {
    enabled: boolean;
    apiUrl?: string;
    apiTokenFile?: string;
    createUsers: boolean;
    serverName: string;
    userOptions: Record<string, unknown>;
    spawnTimeoutSeconds: number;
    requestTimeoutMs: number;
    retries: number;
    connectionChangePolicy: 'keep' | 'restart';
    loginMode: 'sso' | 'handoff';
    loginTokenTtlSeconds: number;
    identityCheck: boolean;
    oauthClientId?: string;
    oauthRedirectUri?: string;
    identityMaxAgeSeconds: number;
  };
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' };
  metrics: { enabled: boolean };
}
