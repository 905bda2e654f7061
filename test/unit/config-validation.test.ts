import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, parseConfig } from '../../gateway/config/load.js';
import { REPO } from '../support/gateway-fixture.js';

const FILE = '/etc/portcullis/gateway.config.toml';
const errorOf = (text: string): ConfigError => {
  try {
    parseConfig(text, FILE);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
};

describe('gateway.config.toml is validated on load', () => {
  it('the shipped file is valid and gives the documented defaults', () => {
    const file = path.join(REPO, 'gateway.config.toml');
    const c = parseConfig(readFileSync(file, 'utf8'), file);
    expect(c.ssh.listen).toBe('0.0.0.0:2222');
    expect(c.web.listen).toBe('0.0.0.0:8443');
    expect(c.dataDir).toBe(path.join(REPO, 'data'));
    expect(c.ssh.idle_timeout).toBe(15 * 60_000);
    expect(c.auth.lockout_threshold).toBe(5);
    expect(c.auth.lockout_duration).toBe(15 * 60_000);
  });

  it('an unknown key names the file, the key and the reason', () => {
    const e = errorOf('[ssh]\nlisen = "0.0.0.0:2222"\n');
    expect(e.file).toBe(FILE);
    expect(e.key).toBe('ssh.lisen');
    expect(e.message).toBe(`${FILE}: ssh.lisen: unknown key (not part of the configuration schema)`);
  });

  it('a bad value names the key and what was expected', () => {
    const e = errorOf('[ssh]\nlisten = "everywhere"\n');
    expect(e.key).toBe('ssh.listen');
    expect(e.message).toContain('expected "host:port"');
    expect(e.message).toContain('"everywhere"');
    expect(errorOf('[auth]\nlockout_duration = "soon"\n').key).toBe('auth.lockout_duration');
    expect(errorOf('[auth]\nlockout_threshold = "5"\n').key).toBe('auth.lockout_threshold');
  });

  it('refuses retention below the hard floors (S-3.3, S-4.4)', () => {
    expect(errorOf('[recordings]\nretention_days = 90\n').message).toContain('S-3.3');
    expect(errorOf('[audit]\nretention_days = 365\n').message).toContain('S-4.4');
  });

  it('reports broken TOML with its line', () => {
    expect(errorOf('[ssh\nlisten = 1').message).toMatch(/line 1/);
  });

  it('resolves relative paths against the config file folder', () => {
    const c = parseConfig('data_dir = "state"\n[recordings]\npath = "/srv/rec"\n', FILE);
    expect(c.dataDir).toBe('/etc/portcullis/state');
    expect(c.paths.recordings).toBe('/srv/rec');
    expect(c.paths.database).toBe('/etc/portcullis/state/portcullis.db');
  });
  it('the redis backend needs its URL (inline or from a file), and a cluster needs sane timing', () => {
    expect(errorOf('[store]\nbackend = "redis"\n').message).toBe(`${FILE}: store.url: the redis backend needs exactly one of url or url_file`);
    expect(errorOf('[store]\nbackend = "redis"\nurl = "redis://h:6379/0"\nurl_file = "/x"\n').key).toBe('store.url_file');
    expect(errorOf('[store]\nbackend = "redis"\nurl = "http://h:6379"\n').message).toContain('expected a redis:// or rediss:// URL');
    expect(errorOf('[store]\nurl = "redis://h:6379/0"\n').message).toContain('belong to backend = "redis"');
    expect(errorOf('[store]\nbackend = "redis"\nurl = "redis://h/0"\nprefix = "has space"\n').key).toBe('store.prefix');
    expect(errorOf('[cluster]\nheartbeat_interval = "1s"\nnode_timeout = "2s"\n').message).toBe(`${FILE}: cluster.node_timeout: must be at least three heartbeat intervals, got "2s"`);
    expect(errorOf('[cluster]\nnode_id = "a b"\n').key).toBe('cluster.node_id');
    const c = parseConfig('[store]\nbackend = "redis"\nurl_file = "secrets/redis-url"\n[cluster]\nnode_id = "gw-a"\n[vault]\nmaster_key = "/shared/master.key"\n', FILE);
    expect(c.paths.redisUrlFile).toBe('/etc/portcullis/secrets/redis-url');
    expect(c.paths.masterKey).toBe('/shared/master.key');
    expect(c.nodeId).toBe('gw-a');
    expect(c.store.prefix).toBe('portcullis:');
  });
});
