import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    // policy/ is the pure core: no I/O, no clock, nothing from the rest of the project.
    files: ['policy/**/*.ts'],
    ignores: ['policy/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['../gateway/*', '../recordings/*', '../web-console/*', 'node:*', 'fs', 'net', 'child_process', 'http', 'https'], message: 'policy/ is pure: plain data in, decision out.' },
        ],
      }],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'policy/ takes `now` as an argument.' }],
    },
  },
  {
    // The browser app imports only policy/ from the server side (roles, the error catalogue), and nothing from Node.
    files: ['web-console/ui/src/**/*.{ts,tsx}'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['node:*', '**/gateway/**', '**/recordings/**', '**/web-console/server/**'], message: 'The browser app imports policy/ only from the server side, and nothing from Node.' }],
      }],
    },
  },
  {
    files: ['bin/**/*.js', 'scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly' } },
  },
);
