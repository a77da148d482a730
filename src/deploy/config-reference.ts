/**
 * docs/config.md, the configuration reference: every setting of the service's config schema
 * (src/config/schema.ts) and every value of the Helm chart (src/deploy/chart-values.ts), rendered
 * from the schemas as z2jh renders its reference from its own. Pure: schemas in, Markdown out;
 * scripts/generate.mjs writes the file and test/unit/generated.test.ts fails when it drifts.
 */
type Schema = { [key: string]: any };

const HEADER = `<!-- Generated from src/config/schema.ts and src/deploy/chart-values.ts by \`npm run generate\`: edit those, not this file. -->

# Configuration reference

The service reads one YAML file (\`omnisci-handoff serve --config FILE\`, or the path in
\`OMNISCI_HANDOFF_CONFIG\`), validated against the schema below before it starts: every problem is
listed with its path and the process exits with code 2; \`omnisci-handoff check-config --config FILE\`
checks a file without starting. Every setting has the default shown or stays unset; what must go
together is checked too: token handoffs need a key source in \`token.keys\` and then \`token.issuer\`
and \`token.audience\`; without a key source only header mode (\`heavydb.enabled\`) lets anybody in.
Secrets never go in this file: they are read from the files or env vars the settings name.

With the Helm chart, the service configuration goes under \`config:\` in the chart's values
([Helm chart values](#helm-chart-values)); the chart sets some settings itself and changes a few
defaults, which each setting below says.
`;

/**
 * Markdown text of a description: code spans kept, HTML and emphasis characters escaped, env var
 * names set as code, docs/ files linked.
 */
function prose(text: string): string {
  return text
    .split('`')
    .map((part, i) =>
      i % 2 === 1
        ? part
        : part
            .replace(/[\\*]/g, '\\$&')
            .replace(/</g, '&lt;')
            .replace(/\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b/g, '`$&`')
            .replace(/\bdocs\/([\w-]+\.md)/g, '[docs/$1]($1)'),
    )
    .join('`');
}

const code = (v: unknown) => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;
const json = (v: unknown) => `\`${JSON.stringify(v)}\``;

/** What a value must look like: its type and the constraints the schema puts on it. */
function shape(node: Schema): string {
  if (node.enum) return `one of ${node.enum.map(json).join(', ')}`;
  const facts: string[] = [];
  if (node.minimum !== undefined && node.maximum !== undefined) facts.push(`${node.minimum} to ${node.maximum}`);
  if (node.minLength > 1) facts.push(`at least ${node.minLength} characters`);
  if (node.maxLength) facts.push(`at most ${node.maxLength} characters`);
  if (node.pattern) facts.push(`matching ${code(node.pattern)}`);
  if (node.minItems) facts.push(`at least ${node.minItems}`);
  if (node.uniqueItems) facts.push('no repeats');
  let type: string = node.type === 'string' && node.minLength === 1 ? 'non-empty string' : node.type;
  if (node.type === 'array') {
    const items = node.items ?? {};
    type = items.enum ? `list of ${items.enum.map(json).join(', ')}` : `list of ${items.type ?? 'value'}s`;
    const each = shape({ ...items, type: undefined, enum: undefined });
    if (each) facts.unshift(`each ${each}`);
  } else if (node.type === 'object') {
    type = node.additionalProperties?.type ? `map of ${node.additionalProperties.type}s` : 'object';
  }
  return [type, ...facts].filter(Boolean).join(', ');
}

function dflt(node: Schema): string {
  if (node.default === undefined) return 'unset';
  return json(node.default);
}

function child(node: Schema | undefined, key: string): Schema | undefined {
  return node?.properties?.[key];
}

/**
 * One section per object, one entry per setting, in schema order. `chart`, when given, is the chart's
 * view of the same subtree (values.schema.json's `config`): a setting missing there is set by the
 * chart, a different default is the chart's.
 */
function settings(parent: Schema, prefix: string, depth: number, out: string[], chart: Schema | undefined | null): void {
  for (const [key, node] of Object.entries(parent.properties as Record<string, Schema>)) {
    const path = `${prefix}${key}`;
    const inChart = chart === null ? undefined : child(chart, key);
    out.push(`${'#'.repeat(Math.min(depth, 4))} \`${path}\``, '', prose(node.description ?? ''), '');
    if (chart !== null && !inChart) out.push('Set by the chart: not allowed under `config:`.', '');
    if (node.type === 'object' && node.properties) {
      settings(node, `${path}.`, depth + 1, out, chart === null || !inChart ? null : inChart);
      continue;
    }
    out.push(`- Type: ${shape(node)}`, parent.required?.includes(key) ? '- Required' : `- Default: ${dflt(node)}`);
    if (inChart && JSON.stringify(inChart.default) !== JSON.stringify(node.default)) out.push(`- Chart default: ${dflt(inChart)}`);
    out.push('');
  }
}

/** docs/config.md from the config schema and the chart's values schema. */
export function configReference(configSchema: Schema, valuesSchema: Schema): string {
  const { config: chartConfig = {}, global: _global, ...chartProps } = valuesSchema.properties as Record<string, Schema>;
  const links = (props: Record<string, Schema>) => Object.keys(props).map((k) => `[\`${k}\`](#${k.toLowerCase()})`).join(', ');
  const out = [
    HEADER,
    `- [Service configuration](#service-configuration): ${links(configSchema.properties)}`,
    `- [Helm chart values](#helm-chart-values): [\`config\`](#config), ${links(chartProps)}`,
    '',
    '## Service configuration',
    '',
  ];
  settings(configSchema, '', 3, out, chartConfig);
  out.push(
    '## Helm chart values',
    '',
    'Values of the chart `helm/omnisci-handoff`: `values.yaml` lists each with its default, and',
    '`values.schema.json` refuses a wrong type or an unknown key at `helm install`.',
    '',
    '### `config`',
    '',
    prose(chartConfig.description ?? ''),
    'Its settings are the [service configuration](#service-configuration) above.',
    '',
  );
  settings({ properties: chartProps }, '', 3, out, null);
  return `${out.join('\n').trimEnd()}\n`;
}
