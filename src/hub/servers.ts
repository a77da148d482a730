/**
 * A replica's view of its users' servers: one spawn task per user and server (./progress.ts) running
 * ensureServer (./spawn.ts) with the configured user_options and spawn timeout, its throttled
 * followers sharing one pace (./throttle.ts).
 */
import type { Config } from '../config/types.js';
import type { HandoffError } from '../errors.js';
import type { HubClient, HubUser } from './client.js';
import { SpawnTask, SpawnTasks } from './progress.js';
import { ensureServer } from './spawn.js';
import { FollowerPace } from './throttle.js';

export interface TaskOptions {
  /** Stop a running server first (connectionChangePolicy `restart`). */
  restart?: boolean;
  /** Follow what another replica may have started (a failure the hub reports is this task's failure). */
  follow?: boolean;
  /** The user model the caller just read. */
  model?: HubUser;
}

/** The task making `server` ("" the default one) of `user` run. */
export type TaskFor = (user: string, server: string, o: TaskOptions) => SpawnTask;

/** `onCount` hears how many tasks run (a gauge); `onError` each task's failure (a log line). */
export function serverTasks(
  client: HubClient,
  hub: Config['hub'],
  o: { onCount?: (n: number) => void; onError?: (user: string, e: HandoffError) => void } = {},
): TaskFor {
  const tasks = new SpawnTasks(o.onCount);
  const followerPace = new FollowerPace();
  return (user, server, t) =>
    tasks.taskFor(
      `${user}/${server}`,
      () =>
        new SpawnTask(
          (onUpdate, onRequested, wanted) =>
            ensureServer(client, {
              user,
              server,
              userOptions: hub.userOptions,
              restart: t.restart ?? false,
              follow: t.follow ?? false,
              followerPace,
              ...(t.model ? { model: t.model } : {}),
              timeoutMs: hub.spawnTimeoutSeconds * 1000,
              onUpdate,
              onRequested,
              wanted,
            }),
          (err) => o.onError?.(user, err),
        ),
    );
}
