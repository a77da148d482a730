import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

// Every relative link of the Markdown docs leads to a file that exists, and every #anchor to a
// heading of its target, so moving a doc or renaming a section cannot leave a dead link behind.
const ROOT = process.cwd();

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return markdownFiles(path);
    return name.endsWith('.md') ? [path] : [];
  });
}

const FILES = ['README.md', 'CHANGELOG.md', 'jupyter/README.md'].map((f) => join(ROOT, f)).concat(markdownFiles(join(ROOT, 'docs')));

/** The text outside fenced code blocks and code spans, where a link is a link. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchors of a document: its headings, lower-cased, punctuation dropped, spaces as hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, heading = ''] of markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const text = heading.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const slug = text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n ? `${slug}-${n}` : slug);
  }
  for (const [, id = ''] of markdown.matchAll(/<a (?:id|name)="([^"]+)"/g)) out.add(id);
  return out;
}

/** Relative link targets: [text](target) and ![alt](target), without absolute URLs. */
function links(markdown: string): string[] {
  return [...prose(markdown).matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?: "[^"]*")?\)/g)]
    .map((m) => m[1] ?? '')
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

test.each(FILES.map((f) => [relative(ROOT, f), f]))('%s: every relative link resolves', (_name, file) => {
  const markdown = readFileSync(file, 'utf8');
  const broken: string[] = [];
  for (const target of links(markdown)) {
    const [path, anchor] = target.split('#') as [string, string | undefined];
    const resolved = path ? join(dirname(file), decodeURIComponent(path)) : file;
    if (!existsSync(resolved)) broken.push(`${target}: no such file`);
    else if (anchor && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(anchor)) broken.push(`${target}: no such heading`);
  }
  expect(broken).toEqual([]);
});

test('the checker sees links and anchors as GitHub does', () => {
  expect(links('[a](x.md) `[b](no.md)` ![c](img.png) [d](https://example.com) [e](#f)\n```\n[g](no.md)\n```\n')).toEqual(['x.md', 'img.png', '#f']);
  expect([...anchors('## Login CSRF\n## Replicas: nothing lives in one replica\n### `hub.loginMode`\n## Login CSRF\n')]).toEqual([
    'login-csrf',
    'replicas-nothing-lives-in-one-replica',
    'hubloginmode',
    'login-csrf-1',
  ]);
});
