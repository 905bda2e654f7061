/**
 * A device's risk level from appendix B of DB3205/T (table B.1). Portcullis stores the inputs and
 * computes the level, so nobody types a level by hand and a reclassification is a change of facts
 * that the audit log can show.
 */
import { deny, type Decision } from './types.js';

/** Usage forms of devices that touch or enter the body: levelled by the harm if out of control. */
export const BODY_USAGE_FORMS = [
  'energy-therapy',
  'diagnosis-monitoring',
  'fluid-delivery',
  'ionising-radiation',
  'implant',
  'other-general',
] as const;
export type BodyUsageForm = (typeof BODY_USAGE_FORMS)[number];

/** Usage forms of devices that do not touch the body: levelled by the effect on the medical result. */
export const NON_BODY_USAGE_FORMS = ['laboratory', 'standalone-software', 'disinfection', 'other-auxiliary'] as const;
export type NonBodyUsageForm = (typeof NON_BODY_USAGE_FORMS)[number];

export const USAGE_FORMS = [...BODY_USAGE_FORMS, ...NON_BODY_USAGE_FORMS] as const;
export type UsageForm = (typeof USAGE_FORMS)[number];

export const CONTACTS = ['body', 'none'] as const;
export type Contact = (typeof CONTACTS)[number];

/** Ordered from least to most harm. */
export const SEVERITIES = ['minor', 'harm', 'serious'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Ordered from least to most effect on the medical result. */
export const EFFECTS = ['none', 'indirect', 'important'] as const;
export type Effect = (typeof EFFECTS)[number];

export const DEVICE_LEVELS = [1, 2, 3] as const;
export type DeviceLevel = (typeof DEVICE_LEVELS)[number];

/**
 * What a registration form or a stored row supplies, unchecked: the values are plain strings
 * because a stored row or a request body has not been through the type system, and severity and
 * effect are both optional because which one applies depends on the contact. `null` counts as
 * absent, as a database column gives it.
 */
export interface ClassificationInput {
  usageForm: string;
  contact: string;
  severity?: string | null;
  effect?: string | null;
}

// Table B.1, transcribed cell by cell; null is the table's "—" (no such class).
const BODY_LEVELS: Readonly<Record<BodyUsageForm, Readonly<Record<Severity, DeviceLevel>>>> = {
  'energy-therapy': { minor: 2, harm: 2, serious: 3 },
  'diagnosis-monitoring': { minor: 2, harm: 2, serious: 3 },
  'fluid-delivery': { minor: 2, harm: 2, serious: 3 },
  'ionising-radiation': { minor: 2, harm: 2, serious: 3 },
  implant: { minor: 3, harm: 3, serious: 3 },
  'other-general': { minor: 2, harm: 2, serious: 3 },
};

const NON_BODY_LEVELS: Readonly<Record<NonBodyUsageForm, Readonly<Record<Effect, DeviceLevel | null>>>> = {
  laboratory: { none: 1, indirect: 2, important: 3 },
  'standalone-software': { none: null, indirect: 2, important: 3 },
  disinfection: { none: null, indirect: 2, important: 3 },
  'other-auxiliary': { none: 1, indirect: 2, important: 3 },
};

const isOneOf = <T extends string>(list: readonly T[], value: unknown): value is T =>
  typeof value === 'string' && (list as readonly string[]).includes(value);

const present = (v: unknown): boolean => v !== undefined && v !== null;
const quoted = (v: unknown): string => JSON.stringify(v) ?? String(v);
const list = (values: readonly string[]): string => values.join(', ');

/** The level of table B.1 for these inputs, or a refusal naming what is wrong and what is allowed. */
export function classifyDevice(input: ClassificationInput): Decision<DeviceLevel> {
  const { usageForm, contact, severity, effect } = input;
  if (!isOneOf(CONTACTS, contact)) {
    return deny('DEVICE_CLASS_INVALID', `contact ${quoted(contact)} is not one of: ${list(CONTACTS)}`);
  }
  if (!isOneOf(USAGE_FORMS, usageForm)) {
    return deny(
      'DEVICE_CLASS_INVALID',
      `usage form ${quoted(usageForm)} is not one of: ${list(BODY_USAGE_FORMS)} (contact body); ${list(NON_BODY_USAGE_FORMS)} (contact none)`,
    );
  }

  if (isOneOf(BODY_USAGE_FORMS, usageForm)) {
    if (contact !== 'body') {
      return deny(
        'DEVICE_CLASS_INVALID',
        `usage form ${usageForm} is for devices that touch or enter the body, so contact must be body, not ${contact}; a device without body contact takes one of: ${list(NON_BODY_USAGE_FORMS)}`,
      );
    }
    if (present(effect)) {
      return deny(
        'DEVICE_CLASS_INVALID',
        `a device that touches the body is levelled by severity, not effect; remove effect ${quoted(effect)} and give severity: ${list(SEVERITIES)}`,
      );
    }
    if (!present(severity)) {
      return deny('DEVICE_CLASS_INVALID', `a device that touches the body needs a severity: ${list(SEVERITIES)}`);
    }
    if (!isOneOf(SEVERITIES, severity)) {
      return deny('DEVICE_CLASS_INVALID', `severity ${quoted(severity)} is not one of: ${list(SEVERITIES)}`);
    }
    return { allow: true, value: BODY_LEVELS[usageForm][severity] };
  }

  if (contact !== 'none') {
    return deny(
      'DEVICE_CLASS_INVALID',
      `usage form ${usageForm} is for devices that do not touch the body, so contact must be none, not ${contact}; a device with body contact takes one of: ${list(BODY_USAGE_FORMS)}`,
    );
  }
  if (present(severity)) {
    return deny(
      'DEVICE_CLASS_INVALID',
      `a device that does not touch the body is levelled by its effect on the medical result, not severity; remove severity ${quoted(severity)} and give effect: ${list(EFFECTS)}`,
    );
  }
  if (!present(effect)) {
    return deny('DEVICE_CLASS_INVALID', `a device that does not touch the body needs an effect: ${list(EFFECTS)}`);
  }
  if (!isOneOf(EFFECTS, effect)) {
    return deny('DEVICE_CLASS_INVALID', `effect ${quoted(effect)} is not one of: ${list(EFFECTS)}`);
  }
  const level = NON_BODY_LEVELS[usageForm][effect];
  if (level === null) {
    const exists = EFFECTS.filter((e) => NON_BODY_LEVELS[usageForm][e] !== null);
    return deny(
      'DEVICE_CLASS_INVALID',
      `${usageForm} with effect ${effect} is not a class in table B.1 (appendix B marks it "—"); for ${usageForm} the effect must be one of: ${list(exists)}`,
    );
  }
  return { allow: true, value: level };
}
