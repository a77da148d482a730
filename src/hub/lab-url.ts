/** The lab URL every landing ends on (or, in local mode, shows). */
import type { Config } from '../config/types.js';

/**
 * The lab URL for a user's server. Only configuration, the (validated) user name and the (allowed)
 * server name shape it: nothing else from the request chooses the target. Names are percent-encoded;
 * the bare `omnisci` and `reset` params stay bare. A named server lives under the hub's
 * `/user/{name}/{server}/`: a template without `{servername}` gets it after `/user/{username}/`.
 */
export function labUrl(redirect: Config['redirect'], user: string, serverName = ''): string {
  const template =
    serverName && !redirect.labUrlTemplate.includes('{servername}')
      ? redirect.labUrlTemplate.replace('/user/{username}/', '/user/{username}/{servername}/')
      : redirect.labUrlTemplate;
  return template
    .replaceAll('{hubPublicUrl}', redirect.hubPublicUrl)
    .replaceAll('{username}', encodeURIComponent(user))
    .replaceAll('{servername}', encodeURIComponent(serverName));
}
