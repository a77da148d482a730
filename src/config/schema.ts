/**
 * The one configuration schema (JSON Schema draft-07). It validates the service's YAML config,
 * drives `check-config`, and is the source the Helm chart's values.schema.json is generated from.
 * Every property has a description; defaults are filled in by the validator.
 */

/*
 * Builders for schema nodes. Their `const` type parameters keep every literal (types, enums,
 * defaults, `required`), so that `Config` (src/config/types.ts) is derived from this schema rather
 * than written a second time.
 */
type Described<T extends string> = { readonly type: T; readonly description: string };
export const str = <const X extends object = {}>(description: string, extra?: X) =>
  ({ type: 'string', description, ...extra }) as Described<'string'> & X;
export const int = <const D extends number | undefined = undefined>(description: string, minimum: number, maximum: number, dflt?: D) =>
  ({ type: 'integer', description, minimum, maximum, ...(dflt === undefined ? {} : { default: dflt }) }) as unknown as Described<'integer'> & {
    readonly minimum: number;
    readonly maximum: number;
  } & (D extends number ? { readonly default: D } : {});
export const bool = <const D extends boolean>(description: string, dflt: D) => ({ type: 'boolean', description, default: dflt }) as const;
export const strings = <const D extends readonly string[] | undefined = undefined>(description: string, dflt?: D) =>
  ({ type: 'array', items: { type: 'string', minLength: 1 }, description, ...(dflt === undefined ? {} : { default: dflt }) }) as unknown as Described<'array'> & {
    readonly items: { readonly type: 'string'; readonly minLength: 1 };
  } & (D extends readonly string[] ? { readonly default: D } : {});
export const obj = <const P extends Record<string, unknown>, const X extends object = {}>(description: string, properties: P, extra?: X) =>
  ({ type: 'object', description, additionalProperties: false, default: {}, properties, ...extra }) as Described<'object'> & {
    readonly additionalProperties: false;
    readonly default: {};
    readonly properties: P;
  } & X;

/** Kubernetes object names: a DNS label (RFC 1123) and a DNS subdomain. */
export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$';

export const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'] as const;
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
/** Env var names the JupyterHub service environment provides (never placed in the YAML). */
const ENV_NAME = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } as const;
/** A JupyterHub server name as this service builds URLs with it: URL-unreserved characters, never `.` or `..` (path segments). */
export const SERVER_NAME = '^(?!\\.\\.?$)[A-Za-z0-9._~-]{1,255}$';
const HOST_OR_PATTERN = { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9.*:\\[\\]-]+$' } as const;

export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://omnisci-handoff.invalid/config.schema.json',
  title: 'omnisci-handoff configuration',
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: obj('Where the HTTP service (handoff, progress pages) and its internal listener (probes, metrics) listen.', {
      host: str('Interface to bind. Use 0.0.0.0 in a pod.', { default: '127.0.0.1' }),
      port: int('TCP port (0 picks a free one).', 0, 65535, 8470),
      basePath: str(
        'URL prefix of every route. Defaults to JUPYTERHUB_SERVICE_PREFIX when the service runs as a hub service, else "/".',
        { pattern: '^/' },
      ),
      trustProxy: bool('Trust X-Forwarded-* headers from a reverse proxy (the hub proxy, an ingress).', false),
      shutdownGraceSeconds: int('How long SIGTERM waits for requests in flight.', 0, 300, 10),
      internal: obj(
        'The internal listener: /healthz, /readyz (store and hub checks) and /metrics, kept off the public port so that nothing anonymous can make the service call the hub or the store. Bind it where only probes and Prometheus reach it.',
        {
          host: str('Interface to bind (0.0.0.0 in a pod, for kubelet probes and Prometheus).', { default: '127.0.0.1' }),
          port: int('TCP port (0 picks a free one).', 0, 65535, 8471),
        },
      ),
    }),
    token: obj(
      'How handoff tokens (JWTs from Immerse) are verified (docs/handoff-token.md). Token handoffs are on when `token.keys` names a key source; then `issuer` and `audience` are required. Without one (header mode only, `heavydb.enabled`) every token entry answers `tokens_disabled`.',
      {
        issuer: str('Required `iss` claim value (needed when `token.keys` names a key source).', { minLength: 1 }),
        audience: str('Required `aud` claim value; the token must list it (needed when `token.keys` names a key source).', { minLength: 1 }),
        algorithms: {
          type: 'array',
          description: 'Allowed `alg` header values. HS* need an HMAC secret (`token.keys.hmacSecretFile` or `hmacSecretEnv`); the others need public keys (`publicKeyFiles` or `jwksUrl`). `none` is never accepted.',
          items: { enum: ALGORITHMS },
          minItems: 1,
          uniqueItems: true,
          default: ['ES256', 'RS256', 'PS256', 'ES384', 'EdDSA'],
        },
        type: str(
          'Required `typ` header (RFC 8725 explicit typing; an "application/" prefix is ignored). Empty turns the check off, for issuers that cannot set typ: a handoff is then told from other JWTs of the same issuer and audience by its claims only.',
          { default: 'omnisci-handoff+jwt' },
        ),
        revokeType: str('Required `typ` header of revocation tokens (`POST {base}revoke`, Immerse logout); a handoff token with this typ is refused.', {
          default: 'omnisci-revoke+jwt',
        }),
        maxTokenBytes: int('Tokens longer than this (bytes) are refused before parsing (`token_too_large`).', 256, 1048576, 16384),
        allowedOrigins: {
          type: 'array',
          items: { type: 'string', pattern: '^https?://[^/?#]+$' },
          default: [],
          description:
            'Origins (scheme://host[:port]) whose pages may POST a handoff to this service, i.e. Immerse. A browser POST from any other site is refused (cross_site_refused, a login CSRF defence; docs/jupyterhub.md). Empty: the origin of `issuer` when it is an http(s) URL.',
        },
        queryTransport: bool('Accept the token in the query (GET {base}handoff?token=…), where access logs and Referer headers may see it.', true),
        fragmentTransport: bool('Serve the page that posts a token from the URL fragment (GET {base}handoff#token=…).', true),
        maxLifetimeSeconds: int('Largest allowed `exp - iat`, in seconds (`token_lifetime_too_long`).', 1, 86400, 300),
        clockToleranceSeconds: int('Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.', 0, 600, 30),
        sessionPattern: str('Regular expression an OmniSci session id must match (HeavyDB: 32 alphanumerics); other ids get `session_invalid`.', {
          default: '^[A-Za-z0-9]{32}$',
        }),
        keys: obj(
          'Verification key sources; several may be used at once, `kid` selects among them.',
          {
            jwksUrl: str('URL of the issuer JWKS (fetched, cached, refetched on an unknown `kid`). https:// (http:// only on a loopback address).', {
              pattern: '^https?://',
            }),
            jwksTimeoutMs: int('Timeout of one JWKS fetch, in milliseconds.', 100, 60000, 5000),
            jwksCooldownSeconds: int('Least time between two JWKS refetches, in seconds (an unknown `kid` within it is refused, not fetched).', 0, 3600, 30),
            jwksCacheMaxAgeSeconds: int('How long a fetched JWKS is used before it is fetched again, in seconds.', 1, 86400, 600),
            publicKeyFiles: strings('Files holding a PEM SPKI public key, a JWK or a JWKS (read at start).', []),
            hmacSecretFile: str('File holding the HMAC shared secret (HS* algorithms; at least 32 bytes).'),
            hmacSecretEnv: { ...ENV_NAME, description: 'Name of the env var holding the HMAC shared secret (HS* algorithms; at least 32 bytes), when it comes from the environment instead of a file.' },
          },
        ),
      },
    ),
    user: obj('How the JupyterHub user name is derived from the token.', {
      claim: str('Claim holding the user name (the header-mode login takes HeavyDB\'s user name instead).', { default: 'sub', minLength: 1 }),
      lowercase: bool('Lower-case the name (JupyterHub normalizes names to lower case by default).', true),
      stripEmailDomain: bool(
        'Drop the "@domain" of an e-mail address. Only for the domains in `user.emailDomains`: a name of another domain, or without one, is refused (`bad_username`), so that alice@other.example never becomes the hub user of alice@example.com.',
        false,
      ),
      emailDomains: strings('Domains whose addresses `user.stripEmailDomain` maps to bare names (case-insensitive); required with it.', []),
      pattern: str('Extra regular expression the resulting name must match (else `bad_username`).'),
    }),
    omnisci: obj('OmniSci (HeavyDB) connection values handed to the notebook, and which of them a token may choose.', {
      protocol: { enum: ['binary', 'http', 'https'], default: 'https', description: 'Protocol the notebook connects with when the token names none (header mode: always).' },
      host: str('Host the notebook connects to when the token names none (header mode: always).', { default: '' }),
      port: int('Port the notebook connects to when the token names none (header mode: always).', 1, 65535, 443),
      database: str('Database recorded with the session when the token (header mode: HeavyDB) names none. Only the store\'s record keeps it: the session file and env vars do not carry it.', { default: '' }),
      allowedHosts: {
        type: 'array',
        items: HOST_OR_PATTERN,
        default: [],
        description: 'Hosts a token may name besides `omnisci.host` ("*.example.com" patterns allowed); another host gets `host_not_allowed`. Empty: a token may only name `omnisci.host`.',
      },
      allowedPorts: {
        type: 'array',
        items: { type: 'integer', minimum: 1, maximum: 65535 },
        default: [],
        description: 'Ports a token may name besides `omnisci.port`; another port gets `port_not_allowed`. Empty: a token may only name `omnisci.port`.',
      },
    }),
    notebook: obj('What the single-user server receives: the session file, the connection env vars and the Jupyter config (docs/notebook.md).', {
      sessionFormat: {
        enum: ['json', 'text'],
        default: 'json',
        description:
          'Session file format: `json` (`{"session","query"}`, what every released jupyterlab-omnisci parses) or `text` (the id alone, which the released extension cannot read).',
      },
      sessionDir: str('Directory of the single-user container where the webhook (or the webhook-free z2jh values) mounts the session file; the spawner hook of non-Kubernetes hubs points the server at the store\'s file instead.', {
        default: '/var/run/omnisci-handoff',
        pattern: '^/',
      }),
      sessionFileName: str('Name of the session file, in `notebook.sessionDir` and in each user\'s store directory.', {
        default: 'session',
        pattern: '^[A-Za-z0-9._-]+$',
      }),
      envFamilies: {
        type: 'array',
        items: ENV_NAME,
        uniqueItems: true,
        default: [],
        description:
          'Further env var families that get the connection, each as `<FAMILY>_PROTOCOL`, `_HOST` and `_PORT`: the stock notebook helpers read `OMNISCI_*` (omnisci_connect) and `HEAVYAI_*` (heavyai_connect). Names that `notebook.env` already sets are set once.',
      },
      allowHidden: bool(
        "Set ContentsManager.allow_hidden, so that the HEAVY.AI web server's own contents-API write of ~/.jupyterscratch/.omniscisession succeeds on jupyter_server 2 (header mode, docs/heavyai.md).",
        false,
      ),
      relinkUrl: str(
        "Where the lab's 'Re-link with Immerse' (offered once the handed-over session expired) and the kernel's `connect()` errors send the user, e.g. Immerse's URL: opening the notebook again from there hands a new session over. Written to the single-user server's Jupyter config as `OmniSciHandoff.relink_url` (omnisci-handoff-jupyter). An absolute http(s) URL in printable ASCII (percent-encode anything else). Unset: they only say to open the notebook again from Immerse.",
      ),
      env: obj('Env var names of the connection, which the extension reads (its `OmniSciSessionManager.protocol`/`host`/`port` traits, written to the Jupyter config).', {
        protocol: { ...ENV_NAME, default: 'OMNISCI_PROTOCOL', description: 'Env var holding the protocol.' },
        host: { ...ENV_NAME, default: 'OMNISCI_HOST', description: 'Env var holding the host.' },
        port: { ...ENV_NAME, default: 'OMNISCI_PORT', description: 'Env var holding the port.' },
      }),
    }),
    redirect: obj('Where the browser goes after a successful handoff.', {
      hubPublicUrl: str('Public URL of JupyterHub as the browser sees it (`HUB_PUBLIC_URL` in local mode, `npm start`).', {
        default: 'http://127.0.0.1:8000',
        pattern: '^https?://',
      }),
      servicePublicUrl: str(
        "This service's URL as browsers reach it, ending in `listen.basePath`. Login mode `handoff` sends the browser back here from the hub's login to prove it is the browser the login was made for. Default: the hub's origin + `listen.basePath` (the service behind the hub's proxy at /services/<name>/, as z2jh runs it); set it when the service has its own origin.",
        { pattern: '^https?://' },
      ),
      labUrlTemplate: str(
        'Lab URL template; `{hubPublicUrl}`, `{username}` (percent-encoded) and `{servername}` are replaced. The bare `omnisci` and `reset` params must stay: the extension opens its workspace on `?omnisci`.',
        { default: '{hubPublicUrl}/user/{username}/lab?omnisci&reset' },
      ),
    }),
    store: obj('Where sessions are stored: a directory (local mode, hubs without Kubernetes) or one Secret per user.', {
      backend: { enum: ['local', 'kubernetes'], default: 'local', description: 'Store backend: `local` (`store.local`) or `kubernetes` (`store.kubernetes`; needed by the webhook).' },
      local: obj('Local directory backend (local mode, non-Kubernetes hubs).', {
        dir: str('Directory of the store, owned by one service process (docs/non-kubernetes.md).', { default: './.data' }),
        userAccess: {
          enum: ['none', 'group'],
          default: 'none',
          description:
            "Who besides the service reads a user's session file. none: nobody (directories 0700, files 0600; the servers run as the service's account). group: the user's own unix account, for hubs that run each server under it (store and users/ 0711, session files 0640; the spawner hook gives each user directory the user's group, docs/non-kubernetes.md).",
        },
      }),
      maxJtis: int(
        "How many live single-use ids a user's record holds (token ids until their exp, spent progress, login and sign-in tickets until theirs; up to 4 per handoff for up to ~20 minutes). Expired ids are dropped on every write; a live one never is: one more is refused with `record_full`. Raise it with token.maxLifetimeSeconds. At least 16 (four handoffs in flight).",
        16,
        1000,
        256,
      ),
      kubernetes: obj('Kubernetes backend: one Secret per hub user in the hub namespace (docs/kubernetes.md).', {
        namespace: str(
          'Namespace of the Secrets (the hub namespace). Default: POD_NAMESPACE, else the service account namespace file, else the kubeconfig context namespace.',
          { pattern: DNS_LABEL, maxLength: 63 },
        ),
        secretPrefix: str('Secret name prefix; the name is <prefix>-<KubeSpawner safe slug of the user name>.', {
          default: 'omnisci-session',
          pattern: DNS_LABEL,
          maxLength: 180,
        }),
        kubeconfig: str('Kubeconfig file (outside a cluster). Unset: the in-cluster service account is used.'),
        requestTimeoutMs: int('Timeout of one Kubernetes API request, in milliseconds.', 100, 60000, 5000),
        retries: int('Retries of a Kubernetes API request on 429, 5xx or a network error.', 0, 10, 3),
        fastRefresh: bool(
          "After a write, annotate the user's running pods so kubelet refreshes the Secret volume now, not in ~1 min.",
          true,
        ),
        gcMaxAgeDays: int("Delete Secrets not written for this long (HeavyDB's longest session: 30 days). 0: never.", 0, 3650, 30),
        gcIntervalMinutes: int('How often this replica sweeps for old Secrets. 0: no periodic sweep.', 0, 10080, 60),
      }),
    }),
    webhook: obj(
      'Mutating admission webhook that injects the session into KubeSpawner single-user pods (docs/kubernetes.md).',
      {
        enabled: bool('Serve the webhook (needs `store.backend: kubernetes`).', false),
        host: str('Interface of the webhook HTTPS listener (the API server must reach it).', { default: '0.0.0.0' }),
        port: int('Webhook HTTPS port (0 picks a free one).', 0, 65535, 8443),
        certFile: str('PEM certificate (chain) of the webhook; reloaded when it changes.'),
        keyFile: str('PEM private key of the webhook; reloaded when it changes.'),
        certReloadSeconds: int('How often the certificate files are checked for a change.', 1, 3600, 30),
        containerName: str('Container of the single-user pod that receives the session.', {
          default: 'notebook',
          minLength: 1,
        }),
        jupyterConfigMap: str('ConfigMap holding the Jupyter config files (shipped by the Helm chart).', {
          default: 'omnisci-handoff-jupyter',
          pattern: DNS_SUBDOMAIN,
        }),
        jupyterConfigDir: str('Where that ConfigMap is mounted; appended to JUPYTER_CONFIG_PATH.', {
          default: '/etc/omnisci-handoff/jupyter',
          pattern: '^/',
        }),
        maxBodyBytes: int('Largest AdmissionReview accepted, in bytes.', 1024, 16777216, 4194304),
      },
    ),
    hub: obj('JupyterHub integration: make sure the user exists and their server runs before landing. See docs/jupyterhub.md.', {
      enabled: bool('Use the hub REST API (off: redirect straight to the lab, e.g. local mode).', false),
      apiUrl: str('Hub REST API base, e.g. http://hub:8081/hub/api. Defaults to JUPYTERHUB_API_URL.', {
        pattern: '^https?://',
      }),
      apiTokenFile: str('File holding the service API token (at least 128 bits of entropy). Without it the token comes from JUPYTERHUB_API_TOKEN (never from this file).'),
      ticketKeyFile: str(
        'File of the keys that seal the tickets of the hub flows (progress pages, hub login tokens, parked handoffs, the identity cookie), shared by every replica: one key per line, each at least 128 bits; the first seals, a later `KEY until=<ISO time>` still opens until then. `omnisci-handoff keygen --ticket-keys FILE` writes and rotates it. Default with the local store: `ticket-keys` in `store.local.dir`, created at the first start; required with the kubernetes store (the chart generates it).',
      ),
      createUsers: bool('Create missing hub users (needs the `admin:users` scope besides `servers`).', false),
      serverName: str('Named server to start when the handoff names none ("" is the default server; named ones need allow_named_servers).', {
        default: '',
        pattern: '^[A-Za-z0-9._~-]*$',
      }),
      namedServers: obj(
        "Handoffs that name the server they open: the token's `server` claim, in header mode the `server` query parameter of /hub/login. For hubs with allow_named_servers; the session is the user's, the same in all of their servers (docs/jupyterhub.md, \"Named servers\").",
        {
          enabled: bool('Accept a server name from the handoff. Off: a handoff naming a server is refused (`server_not_allowed`).', false),
          allowed: strings('Server names a handoff may open (exact names); another name is refused (`server_not_allowed`).', []),
          pattern: str('Regular expression a server name a handoff may open matches as a whole, besides `allowed`.'),
        },
      ),
      allowSharedServers: bool(
        "Store sessions for users who share a server (JupyterHub 5 sharing: with a user or a group, or by a live share code). The session reaches every server of the user, where a guest could read it (a terminal, a kernel). Off: such a handoff is refused (`server_shared`) before anything is stored or started; the check needs the `read:shares` scope (without it every handoff fails with `hub_forbidden`; `doctor` names the scope). Either way the server extension answers the session only to the server's owner. JupyterHub 4 cannot share (and knows no `read:shares`): turn it on there.",
        false,
      ),
      userOptions: {
        type: 'object',
        default: {},
        description: 'Spawn request body (user_options). Admin-configured only: the hub persists it, so no session ever goes here.',
      },
      spawnTimeoutSeconds: int('How long a handoff waits for the server to become ready, in seconds.', 5, 3600, 300),
      requestTimeoutMs: int('Timeout of one hub API request, in milliseconds (not of the progress stream; a start request gets 10 s more, the time JupyterHub may hold it before answering 202).', 100, 120000, 10000),
      retries: int('Retries of a hub API request that failed to connect or got a 5xx (429 is retried until the spawn timeout).', 0, 10, 3),
      connectionChangePolicy: {
        enum: ['keep', 'restart'],
        default: 'keep',
        description:
          'Running server whose OmniSci protocol/host/port changed: keep it (the session file still updates; the new connection applies after a restart) or restart it.',
      },
      loginMode: {
        enum: ['sso', 'handoff'],
        default: 'sso',
        description:
          'How the browser logs in to the hub: sso (the hub uses the same identity provider as Immerse) or handoff (one-time login token for the shipped authenticator).',
      },
      loginTokenTtlSeconds: int('Lifetime of a one-time hub login token (login mode `handoff`), in seconds.', 1, 30, 30),
      identityCheck: bool(
        'Refuse a handoff for another user than the one the browser is logged in to the hub as (identity_mismatch): the service asks the hub, as its OAuth client, who the browser is.',
        false,
      ),
      oauthClientId: str(
        'OAuth client id of the service at the hub (identityCheck). Default: JUPYTERHUB_CLIENT_ID, else service-<name> from a /services/<name>/ base path.',
      ),
      oauthRedirectUri: str(
        'OAuth redirect URI registered at the hub (identityCheck); it must lead to {base}oauth_callback. Default: JUPYTERHUB_OAUTH_CALLBACK_URL, else {base}oauth_callback.',
      ),
      confirmLogin: bool(
        'Login mode handoff: a browser this service does not know yet is shown a page naming the user before it is logged in to the hub (login CSRF defence; docs/jupyterhub.md). A browser known as another user always sees it.',
        true,
      ),
      identityMaxAgeSeconds: int(
        'How long a checked hub identity is remembered in a signed cookie, sparing later handoffs of the same user the OAuth round (0: check every handoff).',
        0,
        3600,
        300,
      ),
    }),
    heavydb: obj(
      'Header mode for stock HEAVY.AI (docs/heavyai.md): the shipped authenticator hands the X-OmniSci-SessionID header the HEAVY.AI web server sets on /hub/login to this service, which accepts the session only after HeavyDB confirms it (get_session_info) and never ends it (no disconnect).',
      {
        enabled: bool('Accept sessions from the authenticator (needs `hub.enabled`, `heavydb.url` and `omnisci.host`).', false),
        url: str("HeavyDB's HTTP port (Thrift JSON over HTTP POST), e.g. http://heavydb:6278/.", { pattern: '^https?://' }),
        caFile: str('PEM CA bundle trusted for an https:// url, besides the system CAs.'),
        requestTimeoutMs: int('Timeout of one HeavyDB call, in milliseconds.', 100, 60000, 5000),
        retries: int('Retries of a HeavyDB call that failed to connect, timed out or got a 5xx.', 0, 5, 1),
        cacheSeconds: int(
          "How long HeavyDB's confirmation of a session is reused (0: ask every login). Within it a session HeavyDB has ended, or a user whose role was revoked, is still accepted; a refusal of a user's role drops that user's confirmations at once. Refusals are never cached.",
          0,
          60,
          5,
        ),
        requireSuperuser: bool('Accept only sessions of HeavyDB superusers.', false),
        requireRole: str('Accept only sessions whose user has this HeavyDB role (has_role; superusers pass), e.g. omnisci_jupyter, the role Immerse shows its Jupyter button to.', {
          minLength: 1,
        }),
      },
    ),
    log: obj('Logging: JSON lines on stdout (pino).', {
      level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', description: 'Least level logged (`silent`: nothing).' },
    }),
    metrics: obj('Prometheus metrics at /metrics of the internal listener.', {
      enabled: bool('Serve /metrics on the internal listener.', true),
    }),
  },
} as const;
