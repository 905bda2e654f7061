import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../gateway/config/load.js';

const FILE = '/etc/portcullis/gateway.config.toml';

// Issue 14 item 4: /metrics is off unless configured, and plain HTTP stays on loopback.
describe('[metrics] in gateway.config.toml', () => {
  it('is off by default', () => {
    const c = parseConfig('', FILE);
    expect(c.metrics).toEqual({});
    expect(c.paths.metricsTokenFile).toBeNull();
  });

  it('takes a token file (resolved against the config folder) and a loopback listener', () => {
    for (const listen of ['127.0.0.1:9464', '[::1]:9464', 'localhost:9464', '127.0.0.2:0']) {
      const c = parseConfig(`[metrics]\ntoken_file = "metrics-token"\nlisten = "${listen}"\n`, FILE);
      expect(c.metrics.listen).toBe(listen);
      expect(c.paths.metricsTokenFile).toBe('/etc/portcullis/metrics-token');
    }
  });

  it('refuses plain HTTP on any address but loopback, and unknown keys', () => {
    for (const listen of ['0.0.0.0:9464', '10.1.2.3:9464', '[::]:9464', 'gw-a.hospital.example:9464']) {
      expect(() => parseConfig(`[metrics]\nlisten = "${listen}"\n`, FILE)).toThrow(/metrics\.listen: plain HTTP is allowed on a loopback address only/);
    }
    expect(() => parseConfig('[metrics]\ntoken = "inline-secret"\n', FILE)).toThrow(/metrics\.token: unknown key/);
  });
});
