/** Where a browser goes once a session is stored: the whole policy as one table (src/hub/destination.ts). */
import type { Config } from '../../src/config/types.js';
import type { HubUser } from '../../src/hub/client.js';
import { destinationOf, type Destination } from '../../src/hub/destination.js';
import type { AcceptResult, SessionRecord } from '../../src/store/types.js';

const record = (session: string, host: string): SessionRecord => ({
  user: 'ann',
  session,
  query: '',
  connection: { protocol: 'https', host, port: 443, database: '' },
  iat: 1,
  jtis: [],
  updatedAt: 0,
});
const stored = (prev: SessionRecord | undefined, host = 'db1'): AcceptResult => ({ outcome: 'stored', record: record('new', host), previous: prev });
const superseded = (host: string): AcceptResult => ({ outcome: 'superseded', record: record('old', 'db1'), previous: record('old', host) });
const user = (server?: { ready: boolean; pending: string | null }): HubUser => ({ name: 'ann', servers: server ? { '': { name: '', ...server } } : {} });

const running = user({ ready: true, pending: null });
const stopped = user();
const starting = user({ ready: false, pending: 'spawn' });
const stopping = user({ ready: true, pending: 'stop' });

type Row = [string, AcceptResult, HubUser | undefined, Config['hub']['connectionChangePolicy'], Destination];
const rows: Row[] = [
  ['first session, server stopped', stored(undefined), stopped, 'keep', 'start'],
  ['user just created (no model)', stored(undefined), undefined, 'keep', 'start'],
  ['server starting', stored(record('old', 'db1')), starting, 'keep', 'start'],
  ['server stopping', stored(record('old', 'db1')), stopping, 'restart', 'start'],
  ['server running, same connection', stored(record('old', 'db1')), running, 'restart', 'lab'],
  ['server running, first session ever', stored(undefined), running, 'restart', 'lab'],
  ['server running, previous session revoked (empty)', stored(record('', 'db2')), running, 'restart', 'lab'],
  ['server running, connection changed, policy keep', stored(record('old', 'db2')), running, 'keep', 'keep'],
  ['server running, connection changed, policy restart', stored(record('old', 'db2')), running, 'restart', 'restart'],
  ['an older handoff (superseded) changes nothing', superseded('db2'), running, 'restart', 'lab'],
  ['an older handoff, server stopped', superseded('db2'), stopped, 'keep', 'start'],
];

test.each(rows)('%s', (_name, result, model, policy, expected) => {
  expect(destinationOf(result, model, '', policy)).toBe(expected);
});

test('a named server is looked up by its name', () => {
  const named: HubUser = { name: 'ann', servers: { gpu: { name: 'gpu', ready: true, pending: null } } };
  expect(destinationOf(stored(undefined), named, 'gpu', 'keep')).toBe('lab');
  expect(destinationOf(stored(undefined), named, '', 'keep')).toBe('start');
});
