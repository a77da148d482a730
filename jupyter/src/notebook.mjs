/**
 * The notebook the lab extension opens for a handed-over session (pure: no JupyterLab imports, so
 * test/integration/jupyterlab4.test.ts also evaluates its Python literals in a real interpreter).
 */

/**
 * A Python string literal for any string. A JSON string literal is one (Python reads `\"`, `\\`,
 * `\b\f\n\r\t` and `\uXXXX`, lone surrogates included, the same way); multi-line text of printable
 * characters becomes a triple-quoted literal instead, so the SQL reads as written.
 */
export function pyString(value) {
  const text = String(value);
  // Only \n and \t among control characters; no lone surrogates, no U+2028/9 (kept on one line by JSON).
  const plain = /^[^\x00-\x08\x0b-\x1f\x7f\u2028\u2029\ud800-\udfff]*$/u.test(text);
  if (!text.includes('\n') || !plain) return JSON.stringify(text);
  // Backslashes doubled; a quote escaped where it would make three in a row, and every quote of a
  // trailing run (it would merge with the closing quotes).
  const trailing = text.length - text.replace(/"+$/, '').length;
  let body = '';
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\') {
      body += '\\\\';
      run = 0;
    } else if (ch === '"') {
      const escape = run === 2 || i >= text.length - trailing;
      body += escape ? '\\"' : '"';
      run = escape ? 0 : run + 1;
    } else {
      body += ch;
      run = 0;
    }
  }
  return `"""${body}"""`;
}

/**
 * The connect cell. It holds no session id: connect() reads the handed-over session where the server
 * reads it, at every query, so a new handoff reaches a running kernel and no copy of the notebook
 * carries a credential.
 */
export function connectCellSource() {
  return [
    '# The OmniSci (HEAVY.AI) session handed over from Immerse. connect() reads it from this server',
    '# (never from this notebook) and follows the next handoff by itself: after "Re-link with',
    '# Immerse", just run your next query. connect() never ends the session (it is the one your',
    '# Immerse tab is logged in with; con.close() is safe): do not disconnect it yourself.',
    'from omnisci_handoff_jupyter import connect',
    '',
    'con = connect()',
  ].join('\n');
}

/** The query cell: the handed-over SQL, run through a DB-API cursor (no pandas needed). */
export function queryCellSource(answer) {
  const query = answer && typeof answer.query === 'string' ? answer.query : '';
  if (!query.trim()) {
    return ['# Immerse handed over no query. Run one with:', '# rows = con.execute("SELECT ...").fetchall()'].join('\n');
  }
  return [
    '# The query handed over from Immerse.',
    `query = ${pyString(query)}`,
    'cursor = con.execute(query)',
    'columns = [column.name for column in cursor.description]',
    'rows = cursor.fetchall()  # with pandas: pandas.DataFrame(rows, columns=columns)',
    'print(columns)',
    'rows',
  ].join('\n');
}

/** The whole notebook (nbformat 4.5) for the kernel spec `kernel` ({name, displayName}). */
export function sessionNotebook(answer, kernel) {
  const code = (id, source) => ({ cell_type: 'code', id, execution_count: null, metadata: {}, outputs: [], source });
  return {
    cells: [code('omnisci-connect', connectCellSource()), code('omnisci-query', queryCellSource(answer))],
    metadata: {
      kernelspec: { name: kernel.name, display_name: kernel.displayName, language: 'python' },
      language_info: { name: 'python' },
    },
    nbformat: 4,
    nbformat_minor: 5,
  };
}
