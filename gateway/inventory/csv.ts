/**
 * RFC 4180 CSV for the device inventory import and export. Parsing is strict (a stray quote is
 * an error, not a guess) because a misread row would register a device under the wrong address;
 * every error names the physical line where the offending row starts, which is what a person
 * fixing the file in an editor needs.
 */

export type CsvParseResult =
  | { ok: true; header: string[]; rows: Array<{ line: number; values: Record<string, string> }> }
  | { ok: false; line: number; message: string };

interface CsvRecord {
  line: number;
  fields: string[];
  /** Nothing between two line breaks: ignored at the end of the file, refused elsewhere. */
  blank: boolean;
}

class CsvError {
  constructor(readonly line: number, readonly message: string) {}
}

/** Lone CR counts too: Excel for Mac's "CSV (Macintosh)" still ends lines with it. */
function lineBreaksIn(s: string): number {
  let n = 0;
  for (let k = 0; k < s.length; k++) {
    if (s[k] === '\n' || (s[k] === '\r' && s[k + 1] !== '\n')) n++;
  }
  return n;
}

function readRecords(src: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let i = 0;
  let line = 1;
  while (i < src.length) {
    const start = line;
    const fields: string[] = [];
    let quoted = false;
    for (;;) {
      if (src[i] === '"') {
        quoted = true;
        let value = '';
        i++;
        for (;;) {
          const close = src.indexOf('"', i);
          if (close === -1) throw new CsvError(start, 'unterminated quoted field');
          const chunk = src.slice(i, close);
          line += lineBreaksIn(chunk);
          value += chunk;
          i = close + 1;
          if (src[i] !== '"') break;
          value += '"';
          i++;
        }
        const after = src[i];
        if (after !== undefined && after !== ',' && after !== '\r' && after !== '\n') {
          throw new CsvError(start, `unexpected ${JSON.stringify(after)} after a closing quote (a quote inside a quoted field is written "")`);
        }
        fields.push(value);
      } else {
        let j = i;
        for (; j < src.length; j++) {
          const c = src[j];
          if (c === ',' || c === '\r' || c === '\n') break;
          if (c === '"') throw new CsvError(start, 'quote inside an unquoted field (quote the whole field and double the quote)');
        }
        fields.push(src.slice(i, j));
        i = j;
      }
      if (src[i] === ',') {
        i++;
        continue;
      }
      if (src[i] === '\r') i++;
      if (src[i] === '\n') i++;
      line++;
      break;
    }
    records.push({ line: start, fields, blank: !quoted && fields.length === 1 && fields[0] === '' });
  }
  return records;
}

export function parseCsv(text: string): CsvParseResult {
  const src = text.startsWith('\uFEFF') ? text.slice(1) : text;
  let records: CsvRecord[];
  try {
    records = readRecords(src);
  } catch (err) {
    if (err instanceof CsvError) return { ok: false, line: err.line, message: err.message };
    throw err;
  }
  while (records.at(-1)?.blank) records.pop();

  const first = records[0];
  if (first === undefined) return { ok: false, line: 1, message: 'the file is empty: no header line' };
  const header = first.fields.map((name) => name.trim().toLowerCase());
  const seen = new Set<string>();
  for (const [k, name] of header.entries()) {
    if (name === '') return { ok: false, line: first.line, message: `column ${k + 1} of the header has no name` };
    if (seen.has(name)) return { ok: false, line: first.line, message: `column "${name}" appears twice in the header` };
    seen.add(name);
  }

  const rows: Array<{ line: number; values: Record<string, string> }> = [];
  for (const rec of records.slice(1)) {
    if (rec.fields.length !== header.length) {
      const found = rec.blank && header.length > 1 ? 'an empty line' : `${rec.fields.length} field${rec.fields.length === 1 ? '' : 's'}`;
      return { ok: false, line: rec.line, message: `expected ${header.length} fields as in the header, found ${found}` };
    }
    // fromEntries defines own properties, so a column named "__proto__" is data, not a prototype.
    rows.push({ line: rec.line, values: Object.fromEntries(header.map((name, k) => [name, rec.fields[k] ?? ''])) });
  }
  return { ok: true, header, rows };
}

const PLAIN_NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

function cell(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  let s = String(value);
  // Formula injection: staff open these files in Excel or LibreOffice, which would run a cell
  // such as =HYPERLINK(...) or +cmd|... taken from a device name or note. A leading ' makes the
  // program show it as text. Plain numbers (-5, +3.2) are left alone so they stay numbers; the
  // prefix is not removed by parseCsv, so such a cell reads back with its ' in front.
  if (FORMULA_START.test(s) && !PLAIN_NUMBER.test(s)) s = `'${s}`;
  return NEEDS_QUOTES.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/**
 * The header line, then one line per row with the header's columns in its order; CRLF after
 * every line. A column a row does not have is written empty, like null.
 */
export function toCsv(header: string[], rows: Array<Record<string, string | number | null>>): string {
  const line = (cells: string[]): string => `${cells.join(',')}\r\n`;
  let out = line(header.map((name) => cell(name)));
  for (const row of rows) {
    out += line(header.map((name) => cell(Object.hasOwn(row, name) ? row[name] : null)));
  }
  return out;
}
