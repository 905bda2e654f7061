import { describe, expect, it } from 'vitest';
import {
  BODY_USAGE_FORMS,
  classifyDevice,
  EFFECTS,
  NON_BODY_USAGE_FORMS,
  SEVERITIES,
  type ClassificationInput,
} from '../../policy/device-classification.js';

// Table B.1 of DB3205/T appendix B, copied by hand from REQUIREMENTS.md so the test does not
// read the table it is checking. null is the table's "—".
const bodyTable: Array<[string, number, number, number]> = [
  ['energy-therapy', 2, 2, 3],
  ['diagnosis-monitoring', 2, 2, 3],
  ['fluid-delivery', 2, 2, 3],
  ['ionising-radiation', 2, 2, 3],
  ['implant', 3, 3, 3],
  ['other-general', 2, 2, 3],
];
const nonBodyTable: Array<[string, number | null, number, number]> = [
  ['laboratory', 1, 2, 3],
  ['standalone-software', null, 2, 3],
  ['disinfection', null, 2, 3],
  ['other-auxiliary', 1, 2, 3],
];

const bodyCells = bodyTable.flatMap(([form, ...levels]) =>
  (['minor', 'harm', 'serious'] as const).map((severity, i) => ({ form, severity, level: levels[i] })),
);
const nonBodyCells = nonBodyTable.flatMap(([form, ...levels]) =>
  (['none', 'indirect', 'important'] as const).map((effect, i) => ({ form, effect, level: levels[i] })),
);

const codeOf = (input: ClassificationInput): string => {
  const d = classifyDevice(input);
  return d.allow ? `level ${d.value}` : d.code;
};
const detailOf = (input: ClassificationInput): string => {
  const d = classifyDevice(input);
  if (d.allow) throw new Error(`expected a refusal, got level ${d.value}`);
  return d.detail;
};

describe('appendix B, table B.1: devices that touch or enter the body are levelled by harm', () => {
  it('the exported lists match the table rows and columns', () => {
    expect([...BODY_USAGE_FORMS]).toEqual(bodyTable.map(([f]) => f));
    expect([...SEVERITIES]).toEqual(['minor', 'harm', 'serious']);
  });

  it.each(bodyCells)('B.1: $form with $severity harm is level $level', ({ form, severity, level }) => {
    expect(classifyDevice({ usageForm: form, contact: 'body', severity })).toEqual({ allow: true, value: level });
  });

  it('every one of the 18 body cells is covered', () => expect(bodyCells).toHaveLength(18));
});

describe('appendix B, table B.1: devices that do not touch the body are levelled by effect', () => {
  it('the exported lists match the table rows and columns', () => {
    expect([...NON_BODY_USAGE_FORMS]).toEqual(nonBodyTable.map(([f]) => f));
    expect([...EFFECTS]).toEqual(['none', 'indirect', 'important']);
  });

  const existing = nonBodyCells.filter((c) => c.level !== null);
  const missing = nonBodyCells.filter((c) => c.level === null);

  it.each(existing)('B.1: $form with $effect effect is level $level', ({ form, effect, level }) => {
    expect(classifyDevice({ usageForm: form, contact: 'none', effect })).toEqual({ allow: true, value: level });
  });

  it.each(missing)('B.1 "—": $form with $effect effect is no class and is refused', ({ form, effect }) => {
    const d = classifyDevice({ usageForm: form, contact: 'none', effect });
    expect(d.allow ? 'allowed' : d.code).toBe('DEVICE_CLASS_INVALID');
    const detail = detailOf({ usageForm: form, contact: 'none', effect });
    expect(detail).toContain(form);
    expect(detail).toContain('indirect, important');
  });

  it('every one of the 12 non-body cells is covered, two of them "—"', () => {
    expect(nonBodyCells).toHaveLength(12);
    expect(missing).toHaveLength(2);
  });
});

describe('appendix B: malformed inputs are refused, naming what is wrong and what is allowed', () => {
  const cases: Array<[string, ClassificationInput, string[]]> = [
    ['an unknown usage form', { usageForm: 'toaster', contact: 'body', severity: 'minor' }, ['"toaster"', 'energy-therapy', 'laboratory']],
    ['an unknown contact', { usageForm: 'implant', contact: 'skin', severity: 'minor' }, ['"skin"', 'body, none']],
    ['a body form with contact none', { usageForm: 'implant', contact: 'none', effect: 'none' }, ['implant', 'contact must be body', 'laboratory']],
    ['a non-body form with body contact', { usageForm: 'laboratory', contact: 'body', severity: 'minor' }, ['laboratory', 'contact must be none', 'implant']],
    ['a body device without severity', { usageForm: 'fluid-delivery', contact: 'body' }, ['needs a severity', 'minor, harm, serious']],
    ['a body device with severity null', { usageForm: 'fluid-delivery', contact: 'body', severity: null }, ['needs a severity']],
    ['a body device with an effect as well', { usageForm: 'fluid-delivery', contact: 'body', severity: 'harm', effect: 'none' }, ['remove effect', 'minor, harm, serious']],
    ['a body device with only an effect', { usageForm: 'fluid-delivery', contact: 'body', effect: 'important' }, ['not effect']],
    ['a body device with an unknown severity', { usageForm: 'implant', contact: 'body', severity: 'fatal' }, ['"fatal"', 'minor, harm, serious']],
    ['a non-body device without effect', { usageForm: 'laboratory', contact: 'none' }, ['needs an effect', 'none, indirect, important']],
    ['a non-body device with a severity as well', { usageForm: 'laboratory', contact: 'none', severity: 'minor', effect: 'none' }, ['remove severity', 'none, indirect, important']],
    ['a non-body device with an unknown effect', { usageForm: 'laboratory', contact: 'none', effect: 'huge' }, ['"huge"', 'none, indirect, important']],
    ['an empty usage form', { usageForm: '', contact: 'none', effect: 'none' }, ['usage form ""']],
  ];

  it.each(cases)('B.1: %s', (_name, input, mentions) => {
    expect(codeOf(input)).toBe('DEVICE_CLASS_INVALID');
    const detail = detailOf(input);
    for (const m of mentions) expect(detail).toContain(m);
  });

  it('B.1: a field absent as null is the same as a field left out', () => {
    expect(classifyDevice({ usageForm: 'laboratory', contact: 'none', severity: null, effect: 'none' })).toEqual({ allow: true, value: 1 });
    expect(classifyDevice({ usageForm: 'implant', contact: 'body', severity: 'minor', effect: null })).toEqual({ allow: true, value: 3 });
  });
});
