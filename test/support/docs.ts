/**
 * The fenced code blocks of the Markdown docs, for tests that run what the docs show as written
 * (test/unit/docs-config.test.ts, test/integration/heavyai-plain-hub.test.ts).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './root.js';

export interface CodeBlock {
  /** Path from the repository root, e.g. docs/heavyai.md. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's info string, e.g. yaml, python. */
  lang: string;
  /** The heading (any level) the block sits under. */
  heading: string;
  /** The block's text, dedented by its fence's indentation (blocks in list items). */
  text: string;
}

function markdownFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return markdownFiles(path);
      return name.endsWith('.md') ? [path] : [];
    });
}

/** The user-facing docs: the README, the notebook package's README and docs/ (recursively). */
export const DOC_FILES = ['README.md', 'jupyter/README.md'].map((f) => join(ROOT, f)).concat(markdownFiles(join(ROOT, 'docs')));

export function codeBlocks(path: string): CodeBlock[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: CodeBlock[] = [];
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    const open = /^( *)(```+|~~~+)\s*([\w-]*)/.exec(lines[i]!);
    if (!open) {
      heading = /^#{1,6} +(.+?) *#*$/.exec(lines[i]!)?.[1] ?? heading;
      continue;
    }
    const [, indent = '', fence = '', lang = ''] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j]!.trimStart().startsWith(fence); j++) body.push(lines[j]!.startsWith(indent) ? lines[j]!.slice(indent.length) : lines[j]!);
    out.push({ file: relative(ROOT, path), line: i + 1, lang, heading, text: `${body.join('\n')}\n` });
    i = j;
  }
  return out;
}

/** The one block of `lang` under `heading` in a doc: a test taking it fails loudly when the doc changes shape. */
export function blockUnder(file: string, heading: string, lang: string): string {
  const found = codeBlocks(join(ROOT, file)).filter((b) => b.heading === heading && b.lang === lang);
  if (found.length !== 1) throw new Error(`${file}: expected one ${lang} block under "${heading}", found ${found.length}`);
  return found[0]!.text;
}

/** `text` with each `from` replaced by its `to`; every `from` must occur (a renamed value in the doc fails the test). */
export function substitute(text: string, replacements: Record<string, string>): string {
  let out = text;
  for (const [from, to] of Object.entries(replacements)) {
    if (!out.includes(from)) throw new Error(`the doc's block no longer contains ${JSON.stringify(from)}`);
    out = out.replaceAll(from, to);
  }
  return out;
}
