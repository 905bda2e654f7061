import { describe, expect, it } from 'vitest';
import { parseCsv, toCsv } from '../../gateway/inventory/csv.js';

function parsed(text: string): Extract<ReturnType<typeof parseCsv>, { ok: true }> {
  const r = parseCsv(text);
  if (!r.ok) throw new Error(`expected the CSV to parse, got line ${r.line}: ${r.message}`);
  return r;
}

describe('inventory CSV import', () => {
  it('reads quoted commas, doubled quotes and line breaks inside quotes, numbering rows by the line they start on', () => {
    const r = parsed('name,ip,notes\r\n"ct-01, wing B",10.0.0.5,"says ""hi"""\r\nmri-02,10.0.0.6,"two\r\nlines\nhere"\r\nus-03,10.0.0.7,\r\n');
    expect(r.header).toEqual(['name', 'ip', 'notes']);
    expect(r.rows).toEqual([
      { line: 2, values: { name: 'ct-01, wing B', ip: '10.0.0.5', notes: 'says "hi"' } },
      { line: 3, values: { name: 'mri-02', ip: '10.0.0.6', notes: 'two\r\nlines\nhere' } },
      { line: 6, values: { name: 'us-03', ip: '10.0.0.7', notes: '' } },
    ]);
  });

  it('accepts LF, CRLF and a final line without a line break alike', () => {
    const want = [{ line: 2, values: { a: '1', b: '2' } }, { line: 3, values: { a: '3', b: '4' } }];
    expect(parsed('a,b\n1,2\n3,4\n').rows).toEqual(want);
    expect(parsed('a,b\r\n1,2\r\n3,4').rows).toEqual(want);
  });

  it('accepts the lone CR line ends of Excel for Mac, counting them as lines', () => {
    const r = parsed('a,b\r1,"x\ry"\r3,4\r');
    expect(r.rows).toEqual([{ line: 2, values: { a: '1', b: 'x\ry' } }, { line: 4, values: { a: '3', b: '4' } }]);
  });

  it('ignores a UTF-8 byte order mark at the start, so the first column keeps its name', () => {
    const r = parsed('\uFEFFname,ip\r\nct-01,10.0.0.5\r\n');
    expect(r.header).toEqual(['name', 'ip']);
    expect(r.rows[0]?.values).toEqual({ name: 'ct-01', ip: '10.0.0.5' });
    expect(parsed('\uFEFF"name",ip\r\nct-01,10.0.0.5\r\n').header).toEqual(['name', 'ip']);
  });

  it('trims and lower-cases header names, and ignores empty lines at the end', () => {
    const r = parsed(' Name , IP \r\nct-01,10.0.0.5\r\n\r\n\n\r\n');
    expect(r.header).toEqual(['name', 'ip']);
    expect(r.rows).toEqual([{ line: 2, values: { name: 'ct-01', ip: '10.0.0.5' } }]);
  });

  it('keeps a column named __proto__ as plain data', () => {
    const r = parsed('__proto__,x\r\nevil,1\r\n');
    const values = r.rows[0]?.values;
    expect(values && Object.hasOwn(values, '__proto__')).toBe(true);
    expect(values && Object.getPrototypeOf(values)).toBe(Object.prototype);
  });

  it.each([
    ['a row with too few fields', 'name,ip\r\nct-01,10.0.0.5\r\nmri-02\r\n', 3, /expected 2 fields.*found 1 field\b/],
    ['a row with too many fields', 'name,ip\r\nct-01,10.0.0.5,extra\r\n', 2, /expected 2 fields.*found 3 fields/],
    ['a row after a multi-line one', 'name,notes\r\na,"x\r\ny\r\nz"\r\nb,1,2\r\n', 5, /found 3 fields/],
    ['an empty line between rows', 'name,ip\r\nct-01,10.0.0.5\r\n\r\nmri-02,10.0.0.6\r\n', 3, /empty line/],
    ['an unterminated quote, at the line where its row starts', 'name,notes\r\nct-01,ok\r\nmri-02,"never\r\nclosed\r\n', 3, /unterminated/],
    ['text after a closing quote', 'name,notes\r\nct-01,"ok"x\r\n', 2, /after a closing quote/],
    ['a quote inside an unquoted field', 'name,notes\r\nct-01,12" monitor\r\n', 2, /quote inside an unquoted field/],
    ['a duplicate header name, even in another case', 'name,IP,ip\r\nct-01,1,2\r\n', 1, /"ip" appears twice/],
    ['an empty header name', 'name,,ip\r\n', 1, /column 2 .*no name/],
    ['an empty file', '', 1, /empty/],
    ['a file of blank lines after its BOM', '\uFEFF\r\n\r\n', 1, /empty/],
  ])('refuses %s, naming its line', (_what, text, line, message) => {
    const r = parseCsv(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.line).toBe(line);
    expect(r.message).toMatch(message);
  });
});

describe('inventory CSV export', () => {
  it('ends lines with CRLF, quotes only the fields that need it, and writes null as empty', () => {
    const out = toCsv(['name', 'port', 'notes', 'owner'], [
      { name: 'ct-01', port: 22, notes: 'has, comma', owner: null },
      { name: 'say "hi"', port: 5900, notes: 'two\nlines', owner: 'radiology' },
    ]);
    expect(out).toBe('name,port,notes,owner\r\nct-01,22,"has, comma",\r\n"say ""hi""",5900,"two\nlines",radiology\r\n');
  });

  it('writes a column the row lacks as empty', () => {
    expect(toCsv(['a', 'b'], [{ a: 'x' }])).toBe('a,b\r\nx,\r\n');
  });

  it.each([
    ['=HYPERLINK("http://evil","click")', `"'=HYPERLINK(""http://evil"",""click"")"`],
    ['+cmd|\' /C calc\'!A0', `'+cmd|' /C calc'!A0`],
    ['-2+3', `'-2+3`],
    ['@SUM(A1:A9)', `'@SUM(A1:A9)`],
    ['\t=1+1', `'\t=1+1`],
    ['\r=1+1', `"'\r=1+1"`],
  ])('neutralises a cell that a spreadsheet would run as a formula: %j', (value, written) => {
    expect(toCsv(['v'], [{ v: value }])).toBe(`v\r\n${written}\r\n`);
    // What the spreadsheet user opens reads back as text starting with the quote mark.
    expect(parsed(toCsv(['v'], [{ v: value }])).rows[0]?.values.v).toBe(`'${value}`);
  });

  it.each([['-5'], ['+3.25'], ['-0.5e3'], ['.5']])('leaves the plain number %s as a number', (value) => {
    expect(toCsv(['v'], [{ v: value }])).toBe(`v\r\n${value}\r\n`);
  });

  it('leaves negative numbers given as numbers alone, and does not mistake a later = for a formula', () => {
    expect(toCsv(['a', 'b'], [{ a: -5, b: 'x=1' }])).toBe('a,b\r\n-5,x=1\r\n');
  });
});

describe('inventory CSV round trip', () => {
  it('reads back exactly what it wrote, BOM and all', () => {
    const header = ['name', 'ip', 'notes', 'port'];
    const rows = [
      { name: 'ct-01, wing B', ip: '10.0.0.5', notes: 'says "hi"\r\nand more', port: '22' },
      { name: 'mri-02', ip: '10.0.0.6', notes: '', port: '-5' },
      { name: 'ü-ß 日本', ip: '10.0.0.7', notes: ' spaces kept ', port: '3389' },
    ];
    const text = toCsv(header, rows);
    for (const input of [text, `\uFEFF${text}`]) {
      const r = parsed(input);
      expect(r.header).toEqual(header);
      expect(r.rows.map((row) => row.values)).toEqual(rows);
      expect(r.rows.map((row) => row.line)).toEqual([2, 4, 5]);
    }
  });
});
