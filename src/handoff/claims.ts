/**
 * The token contract: the claims of a handoff JWT, as a JSON Schema. Issuers read it as
 * schemas/handoff-claims.schema.json (generated from here by `npm run generate`; a unit test fails
 * when the file drifts), the verifier validates with it, and `OmnisciClaim` is derived from it.
 */
import type { FromSchema } from 'json-schema-to-ts';
import { SERVER_NAME } from '../config/schema.js';

export const claimsSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://omnisci-handoff.invalid/handoff-claims.schema.json',
  title: 'omnisci-handoff token claims',
  description:
    'Claims of a handoff JWT from Immerse. Signature, iss, aud, exp, nbf, iat and lifetime are checked by the verifier against the configuration; this schema fixes the shape. See docs/handoff-token.md.',
  type: 'object',
  required: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'omnisci'],
  properties: {
    iss: { type: 'string', minLength: 1, description: 'Issuer; must equal token.issuer.' },
    sub: { type: 'string', minLength: 1, maxLength: 1024, description: 'The OmniSci user.' },
    aud: {
      description: 'Audience; must contain token.audience.',
      oneOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', items: { type: 'string' }, minItems: 1 },
      ],
    },
    exp: { type: 'number', description: 'Expiry (seconds since the epoch).' },
    iat: { type: 'number', description: 'Issued at; orders handoffs of one user.' },
    nbf: { type: 'number', description: 'Not before (optional).' },
    jti: {
      type: 'string',
      minLength: 8,
      maxLength: 256,
      pattern: '^[\\x21-\\x7e]+$',
      description: 'Unique token id; each is accepted once.',
    },
    server: {
      type: 'string',
      pattern: SERVER_NAME,
      description: 'JupyterHub named server to open (hub.namedServers must be enabled and allow it); absent: hub.serverName.',
    },
    omnisci: {
      type: 'object',
      description: 'The OmniSci session handed over.',
      required: ['session'],
      additionalProperties: false,
      properties: {
        session: {
          type: 'string',
          minLength: 1,
          maxLength: 1024,
          description: 'Session id; must also match token.sessionPattern (HeavyDB: ^[A-Za-z0-9]{32}$).',
        },
        protocol: { enum: ['binary', 'http', 'https'], description: 'Connection protocol; default omnisci.protocol.' },
        host: {
          type: 'string',
          minLength: 1,
          maxLength: 253,
          pattern: '^[A-Za-z0-9.:\\[\\]-]+$',
          description: 'Host; must be in omnisci.allowedHosts.',
        },
        port: { type: 'integer', minimum: 1, maximum: 65535, description: 'Port; must be in omnisci.allowedPorts.' },
        database: { type: 'string', maxLength: 256, pattern: '^[^\\u0000-\\u001f]*$', description: 'Database name; default omnisci.database.' },
        query: { type: 'string', maxLength: 8192, description: 'SQL to open in the workspace.' },
      },
    },
  },
} as const;

export type HandoffClaims = FromSchema<typeof claimsSchema>;
export type OmnisciClaim = HandoffClaims['omnisci'];

/** schemas/handoff-claims.schema.json as generated from claimsSchema. */
export function claimsSchemaJson(): string {
  return `${JSON.stringify(claimsSchema, null, 2)}\n`;
}
