/**
 * The resolved configuration, derived from the one schema (src/config/schema.ts): a setting with a
 * default is always present after validation, one without may be absent — except what
 * resolveConfig fills in from the environment (the base path).
 */
import type { FromSchema } from 'json-schema-to-ts';
import type { configSchema } from './schema.js';

type Validated = FromSchema<typeof configSchema>;

export type Config = Validated & { listen: Validated['listen'] & { basePath: string } };
export type Algorithm = Config['token']['algorithms'][number];
export type OmnisciProtocol = Config['omnisci']['protocol'];
export type SessionFormat = Config['notebook']['sessionFormat'];
