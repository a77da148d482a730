/** The lab URL every landing ends on (or, in local mode, shows). */
import type { Config } from '../config/types.js';

/** The lab URL's parameter carrying a handoff's session fingerprint (./fingerprint.ts), which omnisci-handoff-jupyter's lab extension waits for. */
export const FINGERPRINT_PARAM = 'omnisci-handoff';

/**
 * The lab URL for a user's server. Only configuration, the (validated) user name, the (allowed)
 * server name and the service's own fingerprint shape it: nothing else from the request chooses the
 * target. Names are percent-encoded; the bare `omnisci` and `reset` params stay bare. A named server
 * lives under the hub's `/user/{name}/{server}/`: a template without `{servername}` gets it after
 * `/user/{username}/`. `fingerprint` (a handoff to a running server) is added to the query as
 * `omnisci-handoff=<fingerprint>`, before any fragment.
 */
export function labUrl(redirect: Config['redirect'], user: string, serverName = '', fingerprint?: string): string {
  const template =
    serverName && !redirect.labUrlTemplate.includes('{servername}')
      ? redirect.labUrlTemplate.replace('/user/{username}/', '/user/{username}/{servername}/')
      : redirect.labUrlTemplate;
  const url = template
    .replaceAll('{hubPublicUrl}', redirect.hubPublicUrl)
    .replaceAll('{username}', encodeURIComponent(user))
    .replaceAll('{servername}', encodeURIComponent(serverName));
  if (fingerprint === undefined) return url;
  const hash = url.indexOf('#');
  const [base, fragment] = hash < 0 ? [url, ''] : [url.slice(0, hash), url.slice(hash)];
  const join = !base.includes('?') ? '?' : /[?&]$/.test(base) ? '' : '&';
  return `${base}${join}${FINGERPRINT_PARAM}=${encodeURIComponent(fingerprint)}${fragment}`;
}
