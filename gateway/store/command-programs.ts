/**
 * The programs a logged command line runs, by name: the first word of each command in it (split at
 * `|`, `||`, `&&`, `;`, `&`, new lines, and inside `(…)`, `$(…)` and backquotes), after leading
 * `NAME=value` assignments, with quotes and backslashes removed and a path cut to its last part
 * (`/usr/bin/systemctl` → `systemctl`, `s'c'p` → `scp`). A search aid for the command log ("which
 * sessions ran systemctl?"), not a decision: each line was decided on its parsed form when it ran.
 */
export function programsOf(line: string): string[] {
  const programs: string[] = [];
  let word = '';
  let inWord = false;
  let atCommandStart = true;
  let quote: '"' | "'" | null = null;
  const endWord = (): void => {
    if (!inWord) return;
    if (atCommandStart && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(word) && !['!', '{', '}', 'time', 'then', 'do', 'else', 'if', 'while', 'until'].includes(word)) {
      const name = word.slice(word.lastIndexOf('/') + 1);
      if (name !== '' && !programs.includes(name)) programs.push(name);
      atCommandStart = false;
    }
    word = '';
    inWord = false;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote !== null) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      endWord();
    } else if ('|&;\n()`'.includes(c) || (c === '$' && line[i + 1] === '(')) {
      endWord();
      atCommandStart = true;
      if (c === '$') i++;
    } else {
      word += c;
      inWord = true;
    }
  }
  endWord();
  return programs;
}
