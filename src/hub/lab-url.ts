/** The lab URL every landing ends on (or, in local mode, shows). */
import type { Config } from '../config/types.js';

/**
 * The lab URL for a user. Only configuration and the (validated) user name shape it: nothing from the
 * request chooses the target. The name is percent-encoded; the bare `omnisci` and `reset` params stay bare.
 */
export function labUrl(redirect: Config['redirect'], user: string, serverName = ''): string {
  return redirect.labUrlTemplate
    .replaceAll('{hubPublicUrl}', redirect.hubPublicUrl)
    .replaceAll('{username}', encodeURIComponent(user))
    .replaceAll('{servername}', encodeURIComponent(serverName));
}
