import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Locale } from '../api/api-types.js';
import { createStore } from '../state/store.js';
import { en, type Messages } from './messages-en.js';
import { zhCN } from './messages-zh-cn.js';

export const LOCALES: ReadonlyArray<{ id: Locale; label: string }> = [
  { id: 'en', label: 'English' },
  { id: 'zh-CN', label: '简体中文' },
];

const DICTIONARIES: Record<Locale, Messages> = { en, 'zh-CN': zhCN };
const STORAGE_KEY = 'portcullis.locale';

export type TextKey = keyof Messages['text'];
type Vars = Record<string, string | number>;

export function isLocale(v: unknown): v is Locale {
  return v === 'en' || v === 'zh-CN';
}

function initialLocale(): Locale {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (isLocale(saved)) return saved;
  } catch {
    // Storage refused (private mode): fall back to the browser's language.
  }
  return navigator.language.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
}

export const localeStore = createStore<Locale>(initialLocale());

/** Remembered in the browser too, so the sign-in page speaks the last language used here. */
export function setLocale(locale: Locale): void {
  try {
    localStorage.setItem(STORAGE_KEY, locale);
  } catch {
    // Not remembered in this browser; the account still remembers it.
  }
  document.documentElement.lang = locale;
  localeStore.set(locale);
}

const fill = (s: string, vars?: Vars): string => (vars ? s.replace(/\{(\w+)\}/g, (m, k: string) => (k in vars ? String(vars[k]) : m)) : s);

export interface I18n {
  locale: Locale;
  m: Messages;
  t(key: TextKey, vars?: Vars): string;
  /** An ISO time as the reader's local date and time. */
  time(iso: string | null | undefined): string;
  date(iso: string | null | undefined): string;
  /** The time of day only, for the end of a range that starts the same day. */
  clock(iso: string): string;
  sameDay(a: string, b: string): boolean;
  minutes(n: number): string;
  bytes(n: number | null | undefined): string;
  number(n: number): string;
  /** A name from one of the dictionary's lists (roles, statuses…), or the raw value if it has none. */
  name<K extends keyof Messages['names']>(list: K, value: string | null | undefined): string;
}

export function makeI18n(locale: Locale): I18n {
  const m = DICTIONARIES[locale];
  const dateTime = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' });
  const dateOnly = new Intl.DateTimeFormat(locale, { dateStyle: 'medium' });
  const timeOnly = new Intl.DateTimeFormat(locale, { timeStyle: 'short' });
  const num = new Intl.NumberFormat(locale);
  const parse = (iso: string | null | undefined): Date | null => {
    if (!iso) return null;
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? null : d;
  };
  return {
    locale, m,
    t: (key, vars) => fill(m.text[key], vars),
    time: (iso) => {
      const d = parse(iso);
      return d ? dateTime.format(d) : m.text['common.none'];
    },
    date: (iso) => {
      const d = parse(iso);
      return d ? dateOnly.format(d) : m.text['common.none'];
    },
    clock: (iso) => {
      const d = parse(iso);
      return d ? timeOnly.format(d) : m.text['common.none'];
    },
    sameDay: (a, b) => {
      const x = parse(a);
      const y = parse(b);
      return !!x && !!y && dateOnly.format(x) === dateOnly.format(y);
    },
    minutes: (n) => {
      const h = Math.floor(n / 60);
      const min = Math.round(n % 60);
      if (h === 0) return fill(m.text['duration.minutes'], { m: min });
      if (min === 0) return fill(m.text['duration.hours'], { h });
      return fill(m.text['duration.hoursMinutes'], { h, m: min });
    },
    bytes: (n) => {
      if (n === null || n === undefined) return m.text['common.none'];
      if (n < 1024) return `${num.format(n)} B`;
      if (n < 1024 * 1024) return `${num.format(Math.round(n / 102.4) / 10)} KiB`;
      return `${num.format(Math.round(n / (1024 * 102.4)) / 10)} MiB`;
    },
    number: (n) => num.format(n),
    name: (list, value) => {
      if (value === null || value === undefined || value === '') return m.text['common.none'];
      const names = m.names[list] as Record<string, string>;
      return names[value] ?? value;
    },
  };
}

export const I18nContext = createContext<I18n>(makeI18n('en'));

export function useI18n(): I18n {
  return useContext(I18nContext);
}
