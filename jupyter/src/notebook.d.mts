/** Types of notebook.mjs (the tests import it from TypeScript). */
export interface SessionAnswer {
  session: string;
  query?: string;
  fingerprint?: string;
  connection?: Record<string, string>;
  environment?: { protocol?: string; host?: string; port?: string };
}
export interface NotebookCell {
  cell_type: 'code';
  id: string;
  execution_count: null;
  metadata: Record<string, never>;
  outputs: never[];
  source: string;
}
export interface SessionNotebook {
  cells: NotebookCell[];
  metadata: { kernelspec: { name: string; display_name: string; language: 'python' }; language_info: { name: 'python' } };
  nbformat: 4;
  nbformat_minor: 5;
}
export function pyString(value: string): string;
export function connectCellSource(): string;
export function queryCellSource(answer: SessionAnswer): string;
export function sessionNotebook(answer: SessionAnswer, kernel: { name: string; displayName: string }): SessionNotebook;
