/** Hubs whose servers are started elsewhere: 303 straight to the lab of the server the handoff opens. */
import type { Config } from '../../config/types.js';
import { labUrl } from '../../hub/lab-url.js';
import type { Landing } from '../pipeline.js';

export function directLanding(redirect: Config['redirect'], serverName: string): Landing {
  return {
    async land({ handoff, res }) {
      res.redirect(303, labUrl(redirect, handoff.user, handoff.server ?? serverName));
    },
  };
}
